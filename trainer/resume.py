"""Starting a training run from saved weights: fine-tuning (``--init-from``) and exact resume (``--resume``).

Resume reads the newest complete checkpoint pair of the run folder (model + training state). A pair that
cannot be read (a truncated or corrupt file, e.g. from a full disk) is skipped with a warning naming the
file, and the next older intact pair is used; every error names the file it is about.
"""
from __future__ import annotations

import warnings

from ..core.model.checkpoint import CheckpointError, is_official_path, load_network, read_checkpoint, read_official
from ..core import TPSMM
from .run_dir import RunError
from .train_state import TrainStateError, load_state, restore_rng

__all__ = ["init_weights", "resume_run", "trained_networks"]


def trained_networks(model: TPSMM) -> list[str]:
    """The networks of ``model`` that have weights (a measured ``bg_motion="lk"`` background has none)."""
    return [n for n in model.present_networks() if any(True for _ in getattr(model, n).state_dict())]


def init_weights(model: TPSMM, path: str) -> None:
    """Copy the trained networks of checkpoint ``path`` into ``model`` (fine-tuning start).

    Every network with weights in ``model`` must be in the file with the same shapes; an error names the file and
    the first mismatch. The AVD network, trained separately, is not copied.
    """
    try:
        groups = read_official(path) if is_official_path(path) else read_checkpoint(path)[1]
        for name in ("kp_detector", "dense_motion_network", "inpainting_network", "bg_predictor"):
            target = getattr(model, name)
            if target is None or not any(True for _ in target.parameters()):
                continue
            if name not in groups:
                raise ValueError(f"--init-from {path}: the checkpoint has no trained {name} for this config")
            load_network(target, groups[name], name=name, source=path)
    except CheckpointError as exc:
        raise ValueError(f"--init-from: {exc} (train with the checkpoint's architecture: see `tpsmm info`)") from None


def _read_pair(model: TPSMM, model_path: str, state_path: str) -> tuple[dict, dict]:
    """The tensors and the state of one pair; ``CheckpointError``/``TrainStateError`` name the bad file."""
    _, groups, _ = read_checkpoint(model_path)
    for name in trained_networks(model):
        if name not in groups:
            raise CheckpointError(f"{model_path}: has no {name} weights, which this run's config trains")
    state = load_state(state_path)
    for key in ("step", "epoch", "in_epoch", "optimizer", "scheduler", "rng", "split"):
        if key not in state:
            raise TrainStateError(f"{state_path}: training state lacks {key!r}")
    return groups, state


def resume_run(trainer) -> None:
    """Load the newest intact checkpoint pair of ``trainer.files`` into ``trainer`` (model, optimisers, counters)."""
    files, model = trainer.files, trainer.model
    errors = []
    for step, model_path, state_path in files.checkpoint_pairs():
        try:
            groups, state = _read_pair(model, model_path, state_path)
            for name in trained_networks(model):
                load_network(getattr(model, name), groups[name], name=name, source=model_path)
            break
        except (CheckpointError, TrainStateError) as exc:
            errors.append(str(exc))
            message = f"--resume: skipping checkpoint of step {step}: {exc}"
            files.log(f"warning: {message}")
            warnings.warn(message, RuntimeWarning, stacklevel=2)
    else:
        raise RunError(f"--resume {files.out_dir}: no intact checkpoint ({'; '.join(errors)})")
    _restore(trainer, state, state_path)
    trainer.last_checkpoint = model_path
    trainer._saved_step = trainer.step
    files.resume(trainer.step)


def _restore(trainer, state: dict, state_path: str) -> None:
    split = state["split"]
    if split["micro_batch"] * split["world_size"] * split["accumulate"] != trainer.config.train.batch_size:
        raise ValueError(f"--resume {state_path}: the global batch size differs from the saved run's")
    if (split["world_size"] * split["accumulate"], split["seed"]) != (
            trainer.dist.world_size * trainer.opts.accumulate, trainer.opts.seed):
        trainer.files.log("note: processes x accumulation or seed differ from the saved run; training continues "
                          "but will not repeat the uninterrupted run bit for bit")
    try:
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        if trainer.optimizer_bg is not None and state.get("optimizer_bg") is not None:
            trainer.optimizer_bg.load_state_dict(state["optimizer_bg"])
            trainer.scheduler_bg.load_state_dict(state["scheduler_bg"])
        if trainer.scaler is not None and state.get("scaler"):
            trainer.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"])
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"--resume {state_path}: saved optimiser/RNG state does not fit this run ({exc})") from None
    trainer.step, trainer.epoch, trainer.in_epoch = state["step"], state["epoch"], state["in_epoch"]
