"""Stage-1 training loop: optimisers, schedules, AMP, DDP, checkpoints, exact resume, progress output.

A run folder ``RUN_DIR`` holds::

    run.json                          # config, options and data settings of the run
    checkpoints/00001000.safetensors  # model (loadable by tpsmm.core.load_model)
    checkpoints/00001000.state.safetensors   # optimisers, schedulers, counters, RNG states
    latest.json                       # the newest complete checkpoint pair (replaced atomically, last)
    model.safetensors                 # the final model, written when training ends
    metrics.jsonl, loss_curve.png, vis/00001000.png, tb/ (when TensorBoard is installed)

Every file is written to a temporary name and renamed, and ``latest.json`` only moves after both files of
a checkpoint exist, so an interruption at any moment leaves the previous checkpoint usable.

Distributed training (``torchrun``): plain DDP, one process per GPU (gloo on CPU). ``--batch-size`` is the global
batch; :class:`~tpsmm.trainer.distributed.StepSampler` gives every rank its slice of each global batch, and the
training noise of a micro-batch is seeded by its position, so N processes make the same update as one process
accumulating N micro-batches (BatchNorm statistics are per micro-batch in both, as in the release's
DataParallel). The background predictor is unused before ``bg_start``: instead of ``find_unused_parameters=True``
(an autograd-graph walk every step, for ~99 % of training that does use it) the DDP wrapper is built without it
and rebuilt once, at ``bg_start``, with it.

Exact resume: the data order is a function of ``(seed, epoch, step)`` (and the data set's item draws of
``(seed, epoch, index)``), the noise of ``(seed, step, micro-batch)``; the state file holds the counters, the
optimisers, schedulers, gradient scaler and global RNG states, so a resumed CPU run repeats the uninterrupted one
bit for bit. Ctrl-C finishes the current step, saves a checkpoint and returns (a second Ctrl-C aborts).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
import warnings

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import clip_grad_norm_

from ..core.model.config import Config
from ..core import TPSMM
from .distributed import DistInfo, StepSampler, all_reduce_sum, chunk_seed, init_distributed, shutdown_distributed
from .batch_losses import BatchLosses, background_active
from .losses import build_reconstruction_loss
from .optimizers import build_optimizers, training_precision
from .run_dir import RunFiles
from .options import AMP_MODES, TrainOptions, TrainResult, TrainingDiverged
from .resume import init_weights, resume_run
from .train_state import capture_rng

__all__ = ["AMP_MODES", "TrainOptions", "TrainResult", "TrainingDiverged", "Trainer", "init_weights"]

_BUILD = object()  # Trainer(reconstruction=...) default: build it from the options


class Trainer:
    """Train a :class:`~tpsmm.core.TPSMM` on a data set of :class:`~tpsmm.trainer.data.FramePair` items.

    Args:
        config: model + recipe. ``config.train.batch_size`` is the **global** batch (as released: 28 split
            over the GPUs); it must divide by ``world_size * accumulate``.
        dataset: map-style data set of pairs (``set_epoch`` is called when it has one).
        options: :class:`TrainOptions`.
        resume: continue the run in ``options.out_dir`` from its newest checkpoint.
        overwrite: remove the run files of an earlier run in ``options.out_dir`` first (rank 0).
        reconstruction: a ready reconstruction loss module (default: built from ``options``).
        run_extra: JSON-able settings stored in ``run.json`` (the CLI keeps the data options there).
    """

    def __init__(self, config: Config, dataset, options: TrainOptions, *, resume: bool = False,
                 overwrite: bool = False, run_extra: dict | None = None, reconstruction=_BUILD) -> None:
        if resume and overwrite:
            raise ValueError("--resume and --overwrite exclude each other")
        self.config, self.dataset, self.opts = config, dataset, options
        self.reconstruction = (build_reconstruction_loss(config.train, options.recon_loss, options.vgg_weights)
                               if reconstruction is _BUILD else reconstruction)
        self.dist: DistInfo = init_distributed(options.device)
        self._split_batches()
        self.files = RunFiles(options.out_dir, is_main=self.dist.is_main)
        self._build_model(resume)
        (self.optimizer, self.scheduler,
         self.optimizer_bg, self.scheduler_bg) = build_optimizers(self.model, config.train)
        self.amp_dtype, self.scaler = training_precision(options.amp, self.dist.device)
        self.step = self.epoch = self.in_epoch = 0
        self.last_checkpoint: str | None = None
        self._saved_step = -1
        self.visuals: dict | None = None
        self._start_run(resume, overwrite, run_extra)
        self._net = None
        self._net_bg: bool | None = None
        self._stop_requested = self._sigint = False

    # ------------------------------------------------------------------ construction, by concern
    def _split_batches(self) -> None:
        """The global batch over processes and accumulation steps, and this rank's sampler."""
        tc, opts = self.config.train, self.opts
        world = self.dist.world_size * opts.accumulate
        if tc.batch_size % world:
            raise ValueError(f"--batch-size {tc.batch_size} (global) does not divide into {self.dist.world_size} "
                             f"process(es) x {opts.accumulate} accumulation step(s)")
        self.micro = tc.batch_size // world
        self.sampler = StepSampler(len(self.dataset), micro_batch=self.micro, world_size=self.dist.world_size,
                                   rank=self.dist.rank, accumulate=opts.accumulate, seed=opts.seed)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        if self.steps_per_epoch < 1:
            raise ValueError(f"the data set has {len(self.dataset)} samples per epoch, fewer than the global batch "
                             f"{tc.batch_size}; lower --batch-size or raise --num-repeats")

    def _build_model(self, resume: bool) -> None:
        """The networks on this rank's device (seeded; fine-tuning weights; SyncBatchNorm when asked)."""
        opts, dev = self.opts, self.dist.device
        torch.manual_seed(opts.seed)
        self.model = TPSMM(self.config.model, with_avd=False).to(dev).train()
        if opts.init_from and not resume:
            init_weights(self.model, opts.init_from)
        if opts.sync_bn:
            if not (self.dist.distributed and dev.type == "cuda"):
                raise ValueError("--sync-bn needs several CUDA processes (torchrun on GPUs)")
            for name in ("kp_detector", "bg_predictor"):
                if getattr(self.model, name) is not None:
                    setattr(self.model, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(getattr(self.model, name)))
        if self.reconstruction is not None:
            self.reconstruction.to(dev)

    def _start_run(self, resume: bool, overwrite: bool, run_extra: dict | None) -> None:
        """Continue the run folder's newest checkpoint, or start a new run there (clearing an old one first)."""
        if resume:
            resume_run(self)
            return
        if overwrite:
            self.files.clear()
            if self.dist.distributed:
                torch.distributed.barrier()
        self.files.check_new()
        if self.dist.distributed:
            torch.distributed.barrier()
        self.files.start(self.config, dataclasses.asdict(self.opts), run_extra or {})

    # ------------------------------------------------------------------ setup helpers
    @property
    def total_steps(self) -> int:
        by_epochs = self.config.train.num_epochs * self.steps_per_epoch
        return by_epochs if self.opts.max_steps is None else min(by_epochs, self.opts.max_steps)

    def _network(self, epoch: int):
        """The (DDP-wrapped) training module for ``epoch``; rebuilt when the background predictor switches on.

        Before ``bg_start`` the predictor is not part of the wrapped module at all, so DDP needs neither
        ``find_unused_parameters`` (a graph walk every step) nor tolerance for never-reduced parameters.
        """
        with_bg = background_active(epoch, self.config.model, self.config.train)
        if self._net is None or self._net_bg != with_bg:
            net = BatchLosses(model=self.model, train=self.config.train, reconstruction=self.reconstruction,
                                with_bg=with_bg).to(self.dist.device)
            if self.dist.distributed:
                dev = self.dist.device
                net = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None,
                                              broadcast_buffers=True, gradient_as_bucket_view=True)
            self._net, self._net_bg = net, with_bg
        return self._net

    def _state(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "in_epoch": self.in_epoch,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "optimizer_bg": self.optimizer_bg.state_dict() if self.optimizer_bg else None,
                "scheduler_bg": self.scheduler_bg.state_dict() if self.scheduler_bg else None,
                "scaler": self.scaler.state_dict() if self.scaler else None, "rng": capture_rng(),
                "split": {"world_size": self.dist.world_size, "accumulate": self.opts.accumulate,
                          "micro_batch": self.micro, "seed": self.opts.seed}}

    # ------------------------------------------------------------------ one optimizer step
    def _train_step(self, batches: list) -> dict[str, float]:
        net = self._network(self.epoch)
        dev, accumulate = self.dist.device, len(batches)
        self.optimizer.zero_grad(set_to_none=True)
        if self.optimizer_bg is not None:
            self.optimizer_bg.zero_grad(set_to_none=True)
        sums, names, visuals = None, None, None
        for m, batch in enumerate(batches):
            source = batch.source.to(dev, non_blocking=True)
            driving = batch.driving.to(dev, non_blocking=True)
            chunk = m * self.dist.world_size + self.dist.rank
            sync = contextlib.nullcontext() if (m == accumulate - 1 or not self.dist.distributed) else net.no_sync()
            with sync:
                with torch.autocast(dev.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                    losses, visuals = net(source, driving, epoch=self.epoch,
                                          noise_seed=chunk_seed(self.opts.seed, self.step, chunk))
                total = sum(losses.values()) / accumulate
                (self.scaler.scale(total) if self.scaler else total).backward()
            values = torch.stack([v.detach().float() for v in losses.values()]) / accumulate
            sums = values if sums is None else sums + values
            names = list(losses)
        flag = torch.tensor([1.0 if self._sigint else 0.0], device=dev)
        reduced = all_reduce_sum(torch.cat([sums, flag]), self.dist).cpu()
        self._stop_requested = bool(reduced[-1] > 0)  # agreed by all ranks, so they stop at the same step
        result = {n: float(v) / self.dist.world_size for n, v in zip(names, reduced[:-1])}
        result["loss"] = sum(result.values())
        self.visuals = visuals
        if not all(math.isfinite(v) for v in result.values()):
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(self._divergence_message(result))
        bg_on = self._net_bg and self.optimizer_bg is not None
        optimizers = [self.optimizer] + ([self.optimizer_bg] if bg_on else [])
        if self.scaler is not None:
            for opt in optimizers:
                self.scaler.unscale_(opt)
        clipped = [self.model.kp_detector, self.model.dense_motion_network] + ([self.model.bg_predictor] if bg_on else [])
        for module in clipped:  # as released: each network separately, max-abs norm 10; inpainting unclipped
            clip_grad_norm_(module.parameters(), max_norm=10, norm_type=math.inf)
        for opt in optimizers:
            self.scaler.step(opt) if self.scaler else opt.step()
        if self.scaler is not None:
            self.scaler.update()
        return result

    def _divergence_message(self, losses: dict[str, float]) -> str:
        bad = ", ".join(f"{k}={v:.4g}" for k, v in losses.items() if k != "loss")
        last = self.last_checkpoint or "none (no checkpoint was written yet)"
        return (f"loss is not finite at step {self.step + 1} (epoch {self.epoch}: {bad}); training stopped, "
                f"last good checkpoint: {last} (resume from it with a lower learning rate or without --amp fp16)")

    # ------------------------------------------------------------------ the loop
    def _checkpoint(self) -> None:
        self._saved_step = self.step
        if self.dist.is_main:
            self.last_checkpoint = self.files.save(self.model, self.config, self._state(), self.step, self.epoch,
                                                   keep=self.opts.keep_checkpoints)
        else:
            self.last_checkpoint = self.files.checkpoint_path(self.step)

    def _on_sigint(self, signum, frame) -> None:
        if os.getpid() != self._pid:  # a forked DataLoader worker inherited this handler: it keeps serving data
            return
        if self._sigint:
            raise KeyboardInterrupt
        self._sigint = True
        self.files.log("\ninterrupt: saving a checkpoint after this step (press Ctrl-C again to abort now)")

    def run(self) -> TrainResult:
        """Train until ``total_steps`` (or Ctrl-C); returns how it ended. Raises :class:`TrainingDiverged`."""
        from .data import make_loader

        previous, self._pid = None, os.getpid()
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        loader = make_loader(self.dataset, batch_size=self.micro, num_workers=self.opts.workers,
                             sampler=self.sampler, seed=self.opts.seed, pin_memory=self.dist.device.type == "cuda")
        self.files.open_logs(self.opts.tensorboard, self.total_steps, self.step, self.opts.progress)
        status, iterator = "finished", None
        every = lambda n: n > 0 and self.step % n == 0  # noqa: E731
        t0 = time.perf_counter()
        try:
            while self.step < self.total_steps:
                if iterator is None:
                    if hasattr(self.dataset, "set_epoch"):
                        self.dataset.set_epoch(self.epoch)
                    self.sampler.epoch, self.sampler.start_step = self.epoch, self.in_epoch
                    iterator = iter(loader)
                batches = [next(iterator) for _ in range(self.opts.accumulate)]
                epoch = self.epoch
                losses = self._train_step(batches)
                self.step, self.in_epoch = self.step + 1, self.in_epoch + 1
                if self.in_epoch == self.steps_per_epoch:  # epoch end: schedules move (stepped per epoch)
                    with warnings.catch_warnings():  # bg: stepped from epoch 0 as released, before its optimizer
                        warnings.simplefilter("ignore", UserWarning)  # runs (also fp16 steps skipped by the scaler)
                        self.scheduler.step()
                        if self.scheduler_bg is not None:
                            self.scheduler_bg.step()
                    self.epoch, self.in_epoch, iterator = self.epoch + 1, 0, None
                lr = self.optimizer.param_groups[0]["lr"]
                now = time.perf_counter()  # step time including data loading, pictures and checkpoints
                self.files.log_step(self.step, epoch, lr, losses, now - t0, self.config.train.batch_size)
                t0 = now
                if every(self.opts.vis_every) and self.dist.is_main:
                    self.files.save_visuals(self.step, self.visuals)
                if self._stop_requested:
                    status = "interrupted"
                    break
                if every(self.opts.checkpoint_every) and self.step < self.total_steps:
                    self._checkpoint()
            if self._saved_step != self.step:
                self._checkpoint()
            if status == "finished" and self.dist.is_main:
                self.files.save_final(self.model, self.config, self.step, self.epoch)
                if self.visuals is not None and not every(self.opts.vis_every):
                    self.files.save_visuals(self.step, self.visuals)
        finally:
            self.files.close_logs()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            shutdown_distributed(self.dist)
        return TrainResult(status=status, step=self.step, epoch=self.epoch, checkpoint=self.last_checkpoint)
