"""Model placement, input checks and output conversion shared by the nodes.

* :class:`PlacedModel` is what travels on a ``TPSMM_MODEL`` socket. :func:`on_device` moves it to the
  run device for one node call and back to the offload device afterwards (ComfyUI's "simple" way of
  running a plain ``nn.Module``) and yields an :class:`~tpsmm.core.animation.pipeline.AnimationPipeline`
  with the node's options, in the chosen precision (weights stay float32; half precision runs under
  autocast with the sensitive parts in float32), reporting to ComfyUI's progress bar and honouring
  its interrupt button between batches (the pipeline halves the batch on out-of-memory errors).
* Everything returned to ComfyUI is a float32 copy on the intermediate device (the CPU).
"""
from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from ..core.animation.options import AnimationOptions
from ..core.animation.pipeline import AnimationPipeline, Hooks
from ..core.media.images import InputError, check_user_images
from ..core.media.size import check_aspect
from ..core import TPSMM
from ..core.model.structures import Keypoints, Motion
from . import comfy_compat as cc

__all__ = ["PlacedModel", "ComfyHooks", "on_device", "check_images", "check_one_image", "check_aspect", "to_output",
           "UNLINKED", "one_of_error", "require_one_of"]

UNLINKED = object()
"""Default of the optional inputs a node's ``validate_inputs`` takes: ComfyUI passes a linked input as ``None``
when it validates a prompt (the value does not exist yet) and leaves an unlinked one out."""


@dataclass(frozen=True)
class PlacedModel:
    """A loaded checkpoint on a ``TPSMM_MODEL`` socket.

    Attributes:
        tpsmm: the model (eval mode, float32 weights), resting on ``offload`` between calls.
        name: checkpoint name as chosen in the loader (for messages).
        device: where it runs.
        offload: where it waits between node calls.
        dtype: compute precision (float32, bfloat16 or float16).
    """

    tpsmm: TPSMM
    name: str
    device: torch.device
    offload: torch.device
    dtype: torch.dtype = torch.float32

    @property
    def size(self) -> int:
        return self.tpsmm.config.image_size


class ComfyHooks(Hooks):
    """Pipeline hooks that drive ComfyUI's progress bar (one per stage) and interrupt button."""

    def __init__(self) -> None:
        super().__init__(progress=self._update, check_interrupt=cc.check_interrupt, on_stage=self._stage)
        self.bar = None

    def _stage(self, name: str, total: int | None) -> None:
        self.bar = cc.ProgressBar(total or 0)

    def _update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)


@contextmanager
def on_device(handle: PlacedModel, *, batch_size: int = 8, **options) -> Iterator[AnimationPipeline]:
    """Yield a pipeline over the model on its run device (other ComfyUI models evicted first); move back after.

    ``options`` are :class:`~tpsmm.core.animation.options.AnimationOptions` fields (dtype: the handle's).
    """
    if not isinstance(handle, PlacedModel):
        raise InputError(f"model: expected a TPSMM_MODEL from 'TPSMM Load Checkpoint', got {type(handle).__name__}")
    opts = AnimationOptions(batch_size=max(1, int(batch_size)), dtype=handle.dtype, backend=handle.tpsmm.backend,
                            **options)
    model, moved = handle.tpsmm, handle.device != handle.offload
    if moved:
        cc.free_memory(3 * sum(p.numel() * p.element_size() for p in model.parameters()), handle.device)
        model.to(handle.device)
    try:
        yield AnimationPipeline(model, opts, hooks=ComfyHooks())
    finally:
        if moved:
            model.to(handle.offload)
            cc.soft_empty_cache()


def check_images(images, name: str) -> torch.Tensor:
    """An IMAGE ``[B,H,W,C]`` checked by the core's one validator (:func:`~tpsmm.core.media.images.check_user_images`)."""
    return check_user_images(images, name=name)


def check_one_image(images, name: str) -> torch.Tensor:
    """An IMAGE that must hold exactly one image (a source, a photo), checked like :func:`check_images`."""
    return check_user_images(images, name=name, single=True)


def one_of_error(node: str, linked: dict[str, bool], kinds: tuple[str, str] = ("IMAGE", "VIDEO")) -> str | None:
    """The message for a node whose two alternative inputs (``linked``: name -> connected) are not exactly one,
    else ``None``. Called by ``validate_inputs`` (when the prompt is queued) and :func:`require_one_of`."""
    if sum(map(bool, linked.values())) == 1:
        return None
    (a, b), (ka, kb) = list(linked), kinds
    return f"{node}: connect exactly one of '{a}' ({ka}) or '{b}' ({kb})"


def require_one_of(node: str, values: dict, kinds: tuple[str, str] = ("IMAGE", "VIDEO")) -> str:
    """The name of the one connected input among ``values`` (``None`` = not connected); else :class:`InputError`."""
    message = one_of_error(node, {k: v is not None for k, v in values.items()}, kinds)
    if message:
        raise InputError(message)
    return next(k for k, v in values.items() if v is not None)


def to_output(x):
    """Keypoints / Motion / tensor -> a float32 copy on the intermediate device."""
    dev = cc.intermediate_device()
    move = lambda t: None if t is None else t.detach().to(device=dev, dtype=torch.float32)  # noqa: E731
    if isinstance(x, Keypoints):
        return dataclasses.replace(x, value=move(x.value), frames=move(x.frames))
    if isinstance(x, Motion):
        return dataclasses.replace(x, kp_source=move(x.kp_source), kp_driving=move(x.kp_driving), source=move(x.source))
    return move(x)
