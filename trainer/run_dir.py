"""The files of a training run folder and the progress output (see :mod:`tpsmm.trainer.loop` for the layout).

Only the main process (rank 0) writes; other ranks get a :class:`RunFiles` that does nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import sys

from ..core.media.atomic import atomic_write
from ..core.model.checkpoint import save_checkpoint
from ..core.model.config import Config
from .train_state import save_state
from .visualize import loss_curve, sample_grid, save_png

__all__ = ["RUN_FILE", "RunError", "RunFiles", "read_run", "RUN_OUTPUTS"]

RUN_FILE = "run.json"
RUN_FORMAT = "tpsmm-train-run"
# everything a run writes (``--overwrite`` removes exactly these, never other files of the folder)
RUN_OUTPUTS = (RUN_FILE, "latest.json", "model.safetensors", "metrics.jsonl", "loss_curve.png", "checkpoints", "vis",
               "tb")


class RunError(ValueError):
    """A run folder cannot be used as asked (exists already, has no checkpoint, ...)."""


def _write_json(path: str, obj) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
    atomic_write(path, write)


def read_run(out_dir: str) -> dict:
    """``run.json`` of a run folder: ``{"config": Config, "options": dict, "extra": dict}``."""
    path = os.path.join(out_dir, RUN_FILE)
    if not os.path.isfile(path):
        raise RunError(f"{out_dir}: not a tpsmm run folder ({RUN_FILE} missing)")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        return {"config": Config.from_json(json.dumps(raw["config"])), "options": raw["options"],
                "extra": raw.get("extra", {})}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path}: unreadable run file ({exc})") from None


def _is_run_file(path: str) -> bool:
    """``path`` is a ``run.json`` written by ``tpsmm train`` (format tag present)."""
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("format") == RUN_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class RunFiles:
    """Reads and writes one run folder; ``is_main=False`` turns every write into a no-op."""

    def __init__(self, out_dir: str, *, is_main: bool = True) -> None:
        self.out_dir, self.is_main = os.fspath(out_dir), is_main
        self._bar = self._metrics = self._tb = None
        self.history: dict[str, tuple[list[int], list[float]]] = {}

    def path(self, rel: str) -> str:
        return os.path.join(self.out_dir, rel)

    def checkpoint_path(self, step: int) -> str:
        return self.path(os.path.join("checkpoints", f"{step:08d}.safetensors"))

    def log(self, message: str) -> None:
        """Print a line (rank 0) without breaking the progress bar."""
        if not self.is_main:
            return
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ run lifecycle
    def check_clear(self) -> list[str]:
        """What :meth:`clear` would remove; ``RunError`` (naming what was found) for a folder that is not a run.

        Only a folder whose ``run.json`` is a tpsmm run is cleared; anything in the way of a run's names there is
        refused unless it is what a run writes (a regular file or a plain folder, never a link or device).
        """
        if not os.path.lexists(self.out_dir):
            return []
        if not os.path.isdir(self.out_dir) or os.path.islink(self.out_dir):
            raise RunError(f"--out {self.out_dir}: is not a folder; refusing to replace it")
        found = [n for n in RUN_OUTPUTS if os.path.lexists(self.path(n))]
        if not found:
            return []
        if not _is_run_file(self.path(RUN_FILE)):
            raise RunError(f"--out {self.out_dir}: not a tpsmm run folder (no valid {RUN_FILE}) but holds "
                           f"{', '.join(found)}; --overwrite only replaces a run's own files, so nothing was "
                           "removed (choose another --out or move those files)")
        for name in found:
            path = self.path(name)
            if os.path.islink(path) or not (os.path.isfile(path) or os.path.isdir(path)):
                raise RunError(f"--out {self.out_dir}: {name} is not a regular file or folder; refusing to remove it")
        return found

    def clear(self) -> None:
        """Remove the files of an earlier run (only :data:`RUN_OUTPUTS`, only in a run folder). Rank 0 only."""
        found = self.check_clear()
        if not self.is_main:
            return
        for name in found:
            path = self.path(name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)

    def check_new(self) -> None:
        """Refuse a folder that holds a run already (every rank checks, before anything is written)."""
        if any(os.path.exists(self.path(n)) for n in (RUN_FILE, "latest.json", "checkpoints")):
            raise RunError(f"{self.out_dir}: holds a training run already; continue it with --resume "
                           f"{self.out_dir} or start over with --overwrite")

    def start(self, config: Config, options: dict, extra: dict) -> None:
        """A new run (after :meth:`check_new` on every rank): write ``run.json``."""
        if not self.is_main:
            return
        os.makedirs(self.path("checkpoints"), exist_ok=True)
        _write_json(self.path(RUN_FILE), {"format": RUN_FORMAT, "config": json.loads(config.to_json()),
                                          "options": options, "extra": extra})

    def checkpoint_pairs(self) -> list[tuple[int, str, str]]:
        """Saved ``(step, model, state)`` pairs, newest first: the one ``latest.json`` names, then the others
        in ``checkpoints/`` by step. ``RunError`` naming the folder when there is none."""
        pairs: dict[int, tuple[str, str]] = {}
        folder = self.path("checkpoints")
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                stem = name.split(".")[0]
                if stem.isdigit() and name == f"{stem}.safetensors" and os.path.isfile(
                        os.path.join(folder, f"{stem}.state.safetensors")):
                    pairs[int(stem)] = (os.path.join(folder, name), os.path.join(folder, f"{stem}.state.safetensors"))
        order = sorted(pairs, reverse=True)
        latest = self.path("latest.json")
        try:
            with open(latest, encoding="utf-8") as f:
                named = json.load(f)
            step = int(named["step"])
            if step in pairs:
                order.remove(step)
                order.insert(0, step)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.log(f"warning: {latest}: unreadable ({exc}); using the newest checkpoint in {folder}")
        if not order:
            raise RunError(f"--resume {self.out_dir}: no checkpoint to resume from (no complete pair of "
                           f"NNNNNNNN.safetensors + NNNNNNNN.state.safetensors in {folder})")
        return [(step, *pairs[step]) for step in order]

    def resume(self, step: int) -> None:
        """Drop metric lines past ``step`` (written after the checkpoint) and reload the loss history."""
        if not self.is_main:
            return
        path, kept = self.path("metrics.jsonl"), []
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a crash
                    if rec.get("step", 0) <= step:
                        kept.append(line if line.endswith("\n") else line + "\n")
                        self._remember(rec["step"], rec.get("losses", {}))

            def write(tmp):
                with open(tmp, "w", encoding="utf-8") as f:
                    f.writelines(kept)
            atomic_write(path, write)

    def save(self, model, config: Config, state: dict, step: int, epoch: int, *, keep: int) -> str:
        """Write checkpoint ``step`` (model, then state, then ``latest.json``); prune to ``keep`` pairs."""
        os.makedirs(self.path("checkpoints"), exist_ok=True)
        model_path = self.checkpoint_path(step)
        state_path = model_path.replace(".safetensors", ".state.safetensors")
        save_checkpoint(model, model_path, config=config, metadata={"step": str(step), "epoch": str(epoch)})
        save_state(state_path, state)
        rel = lambda p: os.path.relpath(p, self.out_dir)  # noqa: E731
        _write_json(self.path("latest.json"), {"step": step, "epoch": epoch, "model": rel(model_path),
                                               "state": rel(state_path)})
        self._prune(keep)
        return model_path

    def _prune(self, keep: int) -> None:
        """Keep the newest ``keep`` complete pairs; drop older ones and strays of interrupted saves."""
        folder = self.path("checkpoints")
        names = [n for n in os.listdir(folder) if n.split(".")[0].isdigit() and n.endswith(".safetensors")]
        complete = sorted({int(n.split(".")[0]) for n in names if n.endswith(".state.safetensors")}
                          & {int(n.split(".")[0]) for n in names if not n.endswith(".state.safetensors")})
        kept = set(complete[-keep:])
        for name in names:
            if int(name.split(".")[0]) not in kept:
                os.remove(os.path.join(folder, name))

    def save_final(self, model, config: Config, step: int, epoch: int) -> None:
        save_checkpoint(model, self.path("model.safetensors"), config=config,
                        metadata={"step": str(step), "epoch": str(epoch)})

    # ------------------------------------------------------------------ progress output
    def _remember(self, step: int, losses: dict) -> None:
        for name, value in losses.items():
            steps, values = self.history.setdefault(name, ([], []))
            steps.append(step)
            values.append(float(value))

    def open_logs(self, tensorboard: bool, total: int, initial: int, progress: bool) -> None:
        if not self.is_main:
            return
        self._metrics = open(self.path("metrics.jsonl"), "a", encoding="utf-8")
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True, desc="train")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.log("TensorBoard is not installed; metrics go to metrics.jsonl and loss_curve.png")
            else:
                self._tb = SummaryWriter(self.path("tb"))

    def log_step(self, step: int, epoch: int, lr: float, losses: dict[str, float], seconds: float,
                 batch: int) -> None:
        """Record one optimizer step: a JSONL line, the bar, TensorBoard scalars, the loss history."""
        if not self.is_main:
            return
        parts = {k: v for k, v in losses.items() if k != "loss"}
        rec = {"step": step, "epoch": epoch, "lr": lr, "loss": losses["loss"], "losses": parts,
               "seconds": round(seconds, 6), "samples_per_s": round(batch / seconds, 3) if seconds > 0 else None}
        self._metrics.write(json.dumps(rec) + "\n")
        self._metrics.flush()
        self._remember(step, {"loss": losses["loss"], **parts})
        if self._bar is not None:
            self._bar.set_postfix({"ep": epoch, **{k[:5]: f"{v:.3g}" for k, v in losses.items()}}, refresh=False)
            self._bar.update(1)
        if self._tb is not None:
            for k, v in losses.items():
                self._tb.add_scalar(f"loss/{k}", v, step)
            self._tb.add_scalar("lr", lr, step)

    def save_visuals(self, step: int, visuals: dict) -> None:
        """``vis/STEP.png`` (sample grid) and ``loss_curve.png``."""
        if not self.is_main:
            return
        os.makedirs(self.path("vis"), exist_ok=True)
        grid = sample_grid(visuals)
        save_png(grid, self.path(os.path.join("vis", f"{step:08d}.png")))
        save_png(loss_curve(self.history, title=f"training losses (step {step})"), self.path("loss_curve.png"))
        if self._tb is not None:
            import numpy as np

            self._tb.add_image("samples", np.asarray(grid), step, dataformats="HWC")

    def close_logs(self) -> None:
        for handle in (self._bar, self._metrics, self._tb):
            if handle is not None:
                handle.close()
        self._bar = self._metrics = self._tb = None
