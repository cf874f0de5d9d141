"""Stage 2: train the AVD network of a stage-1 checkpoint (reference ``train_avd.py``).

Per batch, with the other networks frozen and in ``eval()`` mode (the release left the keypoint detector
in train mode, so its BatchNorm statistics drifted; here they stay as trained):
``kp_s = KP(source)``, ``kp_gt = KP(driving)``, ``kp_rand = kp_gt * (sx, sy)`` with per-sample factors
``~ U(1 - random_scale, 1 + random_scale)`` (scaling about the origin), ``rec = AVD(kp_s, kp_rand)`` and
``loss = lambda_shift * mean|kp_gt - rec|``. Adam(lr, betas (0.5, 0.999)), MultiStepLR per epoch.

The run folder gets ``model.safetensors`` (all networks + the AVD network; rewritten atomically at every
checkpoint and at the end), ``metrics.jsonl``, ``loss_curve.png`` and ``vis/STEP.png`` (source, driving,
the animation driven by the AVD keypoints).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import threading
import time

import torch
from torch.optim.lr_scheduler import MultiStepLR

from ..core.model.checkpoint import is_official_path, read_checkpoint, save_checkpoint
from ..core import load_model
from ..core.model.config import AVDTrainConfig, Config, load_config
from ..core import TPSMM
from ..core.networks.avd import AVDNetwork
from .distributed import chunk_seed, training_device
from .overrides import apply_overrides
from .run_dir import RunError, RunFiles

__all__ = ["random_scale", "avd_loss", "AVDTrainer", "add_train_avd_arguments", "train_avd_command"]


def random_scale(kp: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    """``[B,N,2] -> [B,N,2]``: multiply x and y of each sample by its own factor ``~ U(1-scale, 1+scale)``."""
    factors = torch.rand(kp.shape[0], 2, generator=generator) * (2 * scale) + (1 - scale)
    return kp * factors.to(device=kp.device, dtype=kp.dtype)[:, None, :]


def avd_loss(model: TPSMM, source: torch.Tensor, driving: torch.Tensor, cfg: AVDTrainConfig,
             generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Stage-2 loss of a batch ``[B,3,H,W]``; returns ``(loss, {kp_source, kp_driving, kp_avd})``."""
    with torch.no_grad():
        kp_source = model.kp_detector(source)
        kp_gt = model.kp_detector(driving)
        kp_random = random_scale(kp_gt, cfg.random_scale, generator)
    rec = model.avd_network(kp_source, kp_random)
    loss = cfg.lambda_shift * (kp_gt - rec).abs().mean()
    return loss, {"kp_source": kp_source, "kp_driving": kp_gt, "kp_avd": rec.detach()}


class AVDTrainer:
    """Train ``model.avd_network`` (created when the checkpoint has none) on ``dataset`` pairs.

    Args:
        model: a loaded :class:`TPSMM` (any mode; the trainer freezes everything but the AVD network).
        config: full config (``config.train_avd`` is the recipe; stored in the output checkpoint).
        dataset: map-style data set of ``FramePair`` items (``set_epoch`` called when present).
        out_dir: run folder. max_steps: stop early. device / workers / seed / checkpoint_every / vis_every /
        progress: as for ``tpsmm train``.
    """

    def __init__(self, model: TPSMM, config: Config, dataset, *, out_dir: str, max_steps: int | None = None,
                 device: str | torch.device = "cpu", workers: int = 0, seed: int = 0, checkpoint_every: int = 1000,
                 vis_every: int = 500, progress: bool = True) -> None:
        self.cfg, self.config, self.dataset = config.train_avd, config, dataset
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        if model.avd_network is None:
            torch.manual_seed(seed)
            c = model.config
            model.avd_network = AVDNetwork(num_tps=c.num_tps, id_bottle_size=c.avd_id_bottle_size,
                                           pose_bottle_size=c.avd_pose_bottle_size).to(self.device)
        self.avd = model.avd_network.train().requires_grad_(True)
        self.optimizer = torch.optim.Adam(self.avd.parameters(), lr=self.cfg.lr, betas=(0.5, 0.999))
        self.scheduler = MultiStepLR(self.optimizer, list(self.cfg.epoch_milestones), gamma=0.1)
        if self.cfg.batch_size < 2:
            raise ValueError(f"--batch-size {self.cfg.batch_size}: the AVD network's BatchNorm needs at least 2")
        self.steps_per_epoch = len(dataset) // self.cfg.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"the data set has {len(dataset)} samples per epoch, fewer than the batch "
                             f"{self.cfg.batch_size}; lower --batch-size or raise --num-repeats")
        total = self.cfg.num_epochs * self.steps_per_epoch
        self.total_steps = total if max_steps is None else min(total, max_steps)
        self.workers, self.seed, self.progress = workers, seed, progress
        self.checkpoint_every, self.vis_every = checkpoint_every, vis_every
        self.files = RunFiles(out_dir)
        self.step = 0
        self._stop = False

    def _save(self) -> None:
        save_checkpoint(self.model, self.files.path("model.safetensors"), config=self.config,
                        metadata={"stage": "train-avd", "avd_step": str(self.step)})

    def _visuals(self, batch, outputs) -> dict:
        """Animate up to 4 sources with the AVD keypoints (eval mode) for the picture."""
        self.avd.eval()
        with torch.no_grad():
            s, d = batch.source[:4].to(self.device), batch.driving[:4].to(self.device)
            kp_s, kp_avd = outputs["kp_source"][:4], self.avd(outputs["kp_source"][:4], outputs["kp_driving"][:4])
            generated, motion = self.model.generate_frames(s, kp_s, kp_avd)
        self.avd.train()
        return {"source": s, "driving": d, "prediction": generated.prediction, "deformed": generated.deformed,
                "occlusion": motion.occlusion[-1], "kp_source": kp_s, "kp_driving": kp_avd}

    def _on_sigint(self, signum, frame) -> None:
        if os.getpid() != self._pid:  # a forked DataLoader worker inherited this handler
            return
        if self._stop:
            raise KeyboardInterrupt
        self._stop = True
        self.files.log("\ninterrupt: saving after this step (press Ctrl-C again to abort now)")

    def run(self) -> str:
        """Train; returns ``"finished"`` or ``"interrupted"`` (the model file is written in both cases)."""
        from .data import make_loader

        os.makedirs(self.files.out_dir, exist_ok=True)
        self._pid = os.getpid()
        loader = make_loader(self.dataset, batch_size=self.cfg.batch_size, num_workers=self.workers, seed=self.seed,
                             pin_memory=self.device.type == "cuda")
        previous = signal.signal(signal.SIGINT, self._on_sigint) if (
            threading.current_thread() is threading.main_thread()) else None
        self.files.open_logs(False, self.total_steps, 0, self.progress)
        status, epoch = "finished", 0
        try:
            while self.step < self.total_steps and not self._stop:
                if hasattr(self.dataset, "set_epoch"):
                    self.dataset.set_epoch(epoch)
                for batch in loader:
                    t0 = time.perf_counter()
                    gen = torch.Generator().manual_seed(chunk_seed(self.seed, self.step, 0))
                    loss, outputs = avd_loss(self.model, batch.source.to(self.device), batch.driving.to(self.device),
                                             self.cfg, gen)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise RuntimeError(f"AVD loss is {value} at step {self.step + 1}; training stopped "
                                           f"({self.files.path('model.safetensors')} holds the last checkpoint)")
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    self.step += 1
                    self.files.log_step(self.step, epoch, self.optimizer.param_groups[0]["lr"], {"rec_kp": value,
                                        "loss": value}, time.perf_counter() - t0, self.cfg.batch_size)
                    if self.vis_every and self.step % self.vis_every == 0:
                        self.files.save_visuals(self.step, self._visuals(batch, outputs))
                    if self._stop or self.step >= self.total_steps:
                        break
                    if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                        self._save()
                else:
                    self.scheduler.step()
                    epoch += 1
            status = "interrupted" if self._stop and self.step < self.total_steps else "finished"
            self._save()
        finally:
            self.files.close_logs()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return status


def add_train_avd_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``tpsmm train-avd``."""
    p.add_argument("--checkpoint", required=True, help="stage-1 model (.safetensors or official .pth.tar)")
    p.add_argument("--data", required=True, help="data folder (train/ and test/, or flat)")
    p.add_argument("--out", required=True, help="output folder (model.safetensors, metrics.jsonl, pictures)")
    p.add_argument("--config", help="for official checkpoints: preset or YAML with the train_avd recipe")
    p.add_argument("--overwrite", action="store_true", help="replace the model file and logs in --out")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="stop after N steps")
    g.add_argument("--epochs", type=int, help="epochs (default: the config's train_avd.num_epochs)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the config's, 256)")
    p.add_argument("--num-repeats", type=int, help="data set repeats per epoch (default: the config's)")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override a config field, e.g. train_avd.lr=5e-4")
    p.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    p.add_argument("--workers", type=int, default=0, help="data loading processes (default 0)")
    p.add_argument("--cache-frames", action="store_true", help="keep decoded frames in memory")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps between model saves (default 1000)")
    p.add_argument("--vis-every", type=int, default=500, help="steps between pictures (default 500)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def train_avd_command(args) -> int:
    """Body of ``tpsmm train-avd``: 0 when finished, 130 when interrupted (model saved)."""
    from .data import training_dataset

    out_model = os.path.join(args.out, "model.safetensors")
    if os.path.exists(out_model) and not args.overwrite:
        raise RunError(f"{out_model}: exists already (pass --overwrite to replace it)")
    if os.path.abspath(out_model) == os.path.abspath(args.checkpoint):
        raise RunError(f"--out {args.out}: the output would overwrite --checkpoint")
    if is_official_path(args.checkpoint):
        config = load_config(args.config or "vox-256")
    else:
        config, _, _ = read_checkpoint(args.checkpoint)
    config = apply_overrides(config, args.set or [])
    changes = {k: v for k, v in (("batch_size", args.batch_size), ("num_repeats", args.num_repeats),
                                 ("num_epochs", args.epochs)) if v is not None}
    config = dataclasses.replace(config, train_avd=dataclasses.replace(config.train_avd, **changes))
    device = training_device(args.device)
    model = load_model(args.checkpoint, device=device, config=args.config if is_official_path(args.checkpoint)
                       else None)
    config = dataclasses.replace(config, model=model.config)
    if args.overwrite:
        for name in ("metrics.jsonl", "loss_curve.png"):
            if os.path.exists(os.path.join(args.out, name)):
                os.remove(os.path.join(args.out, name))
    dataset = training_dataset(config, args.data, cache_frames=args.cache_frames, seed=args.seed,
                       num_repeats=config.train_avd.num_repeats)
    trainer = AVDTrainer(model, config, dataset, out_dir=args.out, max_steps=args.steps, device=device,
                         workers=args.workers, seed=args.seed, checkpoint_every=args.checkpoint_every,
                         vis_every=args.vis_every, progress=not args.no_progress)
    status = trainer.run()
    print(f"{status} at step {trainer.step}; model with AVD network: {out_model}")
    return 130 if status == "interrupted" else 0
