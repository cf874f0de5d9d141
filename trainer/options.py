"""How a training run is run (:class:`TrainOptions`) and how it ended (:class:`TrainResult`)."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AMP_MODES", "TrainOptions", "TrainResult", "TrainingDiverged"]

AMP_MODES = ("none", "bf16", "fp16")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the last good checkpoint."""


@dataclass(frozen=True)
class TrainOptions:
    """How to run (the recipe itself is ``Config.train``).

    Attributes:
        out_dir: the run folder. max_steps: stop after this many optimizer steps in total (``None``: at the
            end of ``config.train.num_epochs``). accumulate: micro-batches per optimizer step.
        amp: ``none`` | ``bf16`` | ``fp16`` (autocast; fp16 adds a gradient scaler).
        device: ``cuda``/``cpu``/``cuda:N`` or ``None`` (CUDA when available; ``cuda:LOCAL_RANK`` under torchrun).
        checkpoint_every / vis_every: steps between checkpoints / pictures (0 = only at the end).
        keep_checkpoints: newest checkpoint pairs kept in ``checkpoints/``.
        recon_loss: ``vgg`` (perceptual, needs local VGG-19 weights) or ``l1-ssim`` (fallback).
        vgg_weights: VGG-19 weights file (else torchvision's cache). workers: DataLoader workers.
        seed: model init, sample order and training noise. sync_bn: SyncBatchNorm across GPUs.
        progress: show a tqdm bar. tensorboard: also log to ``tb/`` when TensorBoard is installed.
        init_from: start from this checkpoint's weights (tpsmm ``.safetensors`` or official ``.pth.tar``) instead
            of a random initialisation: fine-tuning. The architecture must match; the optimiser starts fresh.
    """

    out_dir: str
    max_steps: int | None = None
    accumulate: int = 1
    amp: str = "none"
    device: str | None = None
    checkpoint_every: int = 1000
    vis_every: int = 500
    keep_checkpoints: int = 3
    recon_loss: str = "vgg"
    vgg_weights: str | None = None
    workers: int = 0
    seed: int = 0
    sync_bn: bool = False
    progress: bool = True
    tensorboard: bool = True
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.amp not in AMP_MODES:
            raise ValueError(f"--amp: expected one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        for name in ("accumulate", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "vis_every", "workers", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')}: must be >= 0, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--steps: must be >= 1, got {self.max_steps}")


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``status`` is ``finished`` or ``interrupted``; ``checkpoint`` the last model file."""

    status: str
    step: int
    epoch: int
    checkpoint: str | None
