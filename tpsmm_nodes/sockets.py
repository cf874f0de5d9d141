"""The pack's socket types and the inputs several nodes share, declared once for every ``io.Schema``.

Types (``io.Custom``): ``TPSMM_MODEL`` (a :class:`~tpsmm.tpsmm_nodes.runtime.PlacedModel`), ``TPSMM_KEYPOINTS``
(:class:`~tpsmm.core.model.structures.Keypoints`), ``TPSMM_MOTION`` (:class:`~tpsmm.core.model.structures.Motion`)
and ``TPSMM_CROP_BOX`` (:class:`~tpsmm.core.media.crop.CropBox`). The names are those of the pack's first
(classic) version, so saved workflows keep connecting.
"""
from __future__ import annotations

from comfy_api.latest import io

from ..core.animation.options import UPSCALE_MODES

__all__ = ["Model", "Keypoints", "Motion", "CropBox", "model_input", "batch_input", "output_size_input",
           "upscale_input", "size_options"]

Model = io.Custom("TPSMM_MODEL")
Keypoints = io.Custom("TPSMM_KEYPOINTS")
Motion = io.Custom("TPSMM_MOTION")
CropBox = io.Custom("TPSMM_CROP_BOX")


def model_input() -> io.Input:
    return Model.Input("model", tooltip="Model from 'TPSMM Load Checkpoint'.")


def batch_input() -> io.Input:
    return io.Int.Input("batch_size", default=8, min=1, max=256,
                        tooltip="Frames per forward pass (lower it if memory runs out).")


def output_size_input() -> io.Input:
    return io.Int.Input("output_size", default=0, min=0, max=8192, step=8, optional=True,
                        tooltip="Side of the square output frames in pixels; 0 = the model size. Larger than the "
                                "model: see 'upscale'.")


def upscale_input() -> io.Input:
    return io.Combo.Input("upscale", options=list(UPSCALE_MODES), default="flow", optional=True,
                          tooltip="How to reach an output larger than the model: flow warps the full-resolution "
                                  "source with the motion (sharp; the network's output fills only occluded parts), "
                                  "bicubic enlarges the model-size frames.")


def size_options(output_size: int, upscale: str) -> dict:
    """The framing fields of :class:`~tpsmm.core.animation.options.AnimationOptions` from the node inputs."""
    return dict(output_size=(int(output_size),) * 2 if output_size else None, upscale=upscale)
