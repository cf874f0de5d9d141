"""Model placement, input checks and output conversion shared by the nodes.

* :class:`LoadedModel` is what travels on a ``TPSMM_MODEL`` socket. :func:`on_device` moves it to the
  run device for one node call and back to the offload device afterwards (ComfyUI's "simple" way of
  running a plain ``nn.Module``) and yields an :class:`~tpsmm.core.animation.engine.AnimationEngine` that
  computes in the chosen precision (weights stay float32; half precision runs under autocast with
  the sensitive parts in float32, see :mod:`tpsmm.core.animation.engine`).
* :func:`chunks` runs long loops in pieces with a progress bar, an interruption check and (on GPUs)
  an out-of-memory retry that halves the piece.
* Everything returned to ComfyUI is a float32 copy on the intermediate device (the CPU).
"""
from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ..core.animation.engine import AnimationEngine
from ..core.media.images import InputError
from ..core.model import TPSMM
from ..core.model.structures import Keypoints, Motion
from . import comfy_compat as cc

__all__ = ["LoadedModel", "on_device", "check_images", "check_aspect", "to_output", "chunks"]


@dataclass(frozen=True)
class LoadedModel:
    """A loaded checkpoint on a ``TPSMM_MODEL`` socket.

    Attributes:
        model: the networks (eval mode, float32 weights), resting on ``offload`` between calls.
        name: checkpoint name as chosen in the loader (for messages).
        device: where it runs.
        offload: where it waits between node calls.
        dtype: compute precision (float32, bfloat16 or float16).
    """

    model: TPSMM
    name: str
    device: torch.device
    offload: torch.device
    dtype: torch.dtype = torch.float32

    @property
    def size(self) -> int:
        return self.model.config.image_size


@contextmanager
def on_device(handle: LoadedModel, *, batch_size: int = 8) -> Iterator[AnimationEngine]:
    """Yield an engine over the model on its run device (other ComfyUI models evicted first); move back after."""
    if not isinstance(handle, LoadedModel):
        raise InputError(f"model: expected a TPSMM_MODEL from 'TPSMM Load Checkpoint', got {type(handle).__name__}")
    model, moved = handle.model, handle.device != handle.offload
    if moved:
        cc.free_memory(3 * sum(p.numel() * p.element_size() for p in model.parameters()), handle.device)
        model.to(handle.device)
    try:
        yield AnimationEngine(model, batch_size=max(1, int(batch_size)), dtype=handle.dtype)
    finally:
        if moved:
            model.to(handle.offload)
            cc.soft_empty_cache()


def check_images(images, name: str) -> torch.Tensor:
    """An IMAGE ``[B,H,W,C]`` with ``B >= 1``; one-line :class:`InputError` otherwise."""
    if not isinstance(images, torch.Tensor):
        raise InputError(f"{name}: expected an IMAGE tensor, got {type(images).__name__}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise InputError(f"{name}: expected an IMAGE [B,H,W,C], got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise InputError(f"{name}: the image batch is empty (0 frames); check the node that feeds it")
    return images


def check_aspect(source_wh: tuple[int, int], driving_wh: tuple[int, int], *, allow_stretch: bool) -> None:
    """Refuse a source and driving video of different shapes (both get stretched to the model's square)."""
    (sw, sh), (dw, dh) = source_wh, driving_wh
    if allow_stretch or abs(math.log((sw / sh) / (dw / dh))) < 0.02:
        return
    raise InputError(f"source is {sw}x{sh} but the driving frames are {dw}x{dh}: different shapes are stretched "
                     "differently to the model's square and distort the motion; crop both to the same aspect ratio "
                     "(e.g. with TPSMM Crop) or enable allow_stretch")


def to_output(x):
    """Keypoints / Motion / tensor -> a float32 copy on the intermediate device."""
    dev = cc.intermediate_device()
    move = lambda t: None if t is None else t.detach().to(device=dev, dtype=torch.float32)  # noqa: E731
    if isinstance(x, Keypoints):
        return dataclasses.replace(x, value=move(x.value), frames=move(x.frames))
    if isinstance(x, Motion):
        return dataclasses.replace(x, kp_source=move(x.kp_source), kp_driving=move(x.kp_driving), source=move(x.source))
    return move(x)


def chunks(engine: AnimationEngine, total: int, step: Callable[[int, int], int]) -> None:
    """Call ``step(start, stop)`` over ``range(total)`` in pieces of ``engine.batch_size`` frames.

    ``step`` returns how many frames it finished (it may stop early, e.g. a generator pass). Progress
    and interruption are checked per piece; a GPU out-of-memory error halves ``engine.batch_size``
    and retries the unfinished frames.
    """
    bar, start = cc.ProgressBar(total), 0
    while start < total:
        cc.check_interrupt()
        try:
            done = step(start, min(start + engine.batch_size, total))
        except torch.cuda.OutOfMemoryError:
            if engine.batch_size == 1:
                raise
            cc.soft_empty_cache()
            engine.batch_size //= 2
            continue
        bar.update(done)
        start += done
