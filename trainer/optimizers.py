"""The optimisers, learning-rate schedules and mixed precision of a stage-1 run (as released).

Adam (betas 0.5/0.999, weight decay 1e-4) with MultiStepLR (x0.1 at each milestone epoch) for the keypoint
detector, dense motion and inpainting networks together, and a second pair for the background predictor
when it has weights (a measured ``bg_motion="lk"`` background has none).
"""
from __future__ import annotations

import torch
from torch.optim.lr_scheduler import MultiStepLR

from ..core.device import resolve_dtype
from ..core.model.config import TrainConfig

__all__ = ["build_optimizers", "training_precision"]


def build_optimizers(model, train: TrainConfig):
    """``(optimizer, scheduler, optimizer_bg, scheduler_bg)`` of ``model`` (a ``TPSMM``); the background pair is
    ``(None, None)`` when the background predictor is missing or has no weights."""
    main = [p for n in ("inpainting_network", "dense_motion_network", "kp_detector")
            for p in getattr(model, n).parameters()]
    adam = dict(lr=train.lr_generator, betas=(0.5, 0.999), weight_decay=1e-4)
    optimizer = torch.optim.Adam(main, **adam)
    scheduler = MultiStepLR(optimizer, list(train.epoch_milestones), gamma=0.1)
    bg_params = list(model.bg_predictor.parameters()) if model.bg_predictor is not None else []
    if not bg_params:
        return optimizer, scheduler, None, None
    optimizer_bg = torch.optim.Adam(bg_params, **adam)
    return optimizer, scheduler, optimizer_bg, MultiStepLR(optimizer_bg, list(train.epoch_milestones), gamma=0.1)


def training_precision(amp: str, device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """``(autocast dtype or None for float32, gradient scaler or None)`` of ``--amp none|bf16|fp16`` on ``device``.

    bf16 on a CPU without native bfloat16 (no AVX512-BF16/AMX) would be emulated ~100x slower: float32 there,
    with the warning of :func:`~tpsmm.core.device.resolve_dtype`. fp16 adds a gradient scaler.
    """
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if amp == "bf16":
        amp_dtype = resolve_dtype(torch.bfloat16, device, what="--amp")
        amp_dtype = None if amp_dtype == torch.float32 else amp_dtype
    return amp_dtype, (torch.amp.GradScaler(device.type) if amp == "fp16" else None)
