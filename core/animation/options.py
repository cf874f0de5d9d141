"""What an animation should look like: one frozen options value shared by every entry point.

The CLI builds it from its flags, the nodes from their inputs, ``TPSMM.animate`` from its arguments,
``tpsmm demo`` and ``tpsmm eval`` from their own needs; :class:`~tpsmm.core.animation.pipeline.AnimationPipeline`
is the only thing that reads it. Every field is checked when the value is made, so a bad option fails
before any frame is decoded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from ..model.container import ModelError
from ..model.structures import MODES
from ..device import parse_dtype
from ..backends.choice import check_backend
from ..media.crop import CropBox
from ..media.errors import FieldError
from ..media.size import Size
from .smoothing import check_smoothing

__all__ = ["AnimationOptions", "UPSCALE_MODES", "VIEWS", "default_batch_size"]

UPSCALE_MODES = ("flow", "bicubic")
VIEWS = ("result", "result+kp", "side-by-side", "side-by-side+kp")
"""Layouts of an output frame: the animated result alone or source | driving | result panels, each
optionally with the keypoints drawn (one colour per TPS)."""


def default_batch_size(device_type: str) -> int:
    """Driving frames per forward pass when none is given: 2 on the CPU (bigger is no faster), else 8."""
    return 2 if device_type == "cpu" else 8


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FieldError(f"expected a finite number, got {value!r}", field=name)
    return float(value)


@dataclass(frozen=True)
class AnimationOptions:
    """Options of one animation (all keyword, all checked on creation: the one home of the option rules;
    :class:`~tpsmm.core.media.images.FieldError` names the field, a
    :class:`~tpsmm.core.model.container.ModelError` for an unknown mode).

    Motion:
        mode: ``standard`` | ``relative`` | ``avd`` (:data:`~tpsmm.core.model.structures.MODES`).
        reference_frame: relative mode: index of the driving frame whose pose matches the source
            (negative counts from the end: -1 = the last frame, as for ``--reference-frame``; an index
            outside the clip is refused when the clip's length is known), or ``"best"`` (closest keypoint layout).
        strength: relative mode motion multiplier (1 = as trained).
        smoothing, smoothing_strength: causal keypoint filter (``off``/``ema``/``one-euro``) and its
            strength in ``[0, 1)``.
        background: move the background with the model's background predictor (as the release's
            reconstruction does; off for animation, as in the release's demo).
    Framing:
        crop: region of the source photo to animate; the result is pasted back into the whole photo.
        feather: width in pixels of the paste-back blend.
        driving_crop: region of every driving frame to use (cropped before the model resize).
        output_size: :class:`~tpsmm.core.media.size.Size` ``(height, width)`` (an int: a square) of the animated
            frames (of the crop box when ``crop`` is set: then ``None`` means the box's own size); ``None`` = the
            model size.
        upscale: how to reach an output larger than the model: ``flow`` (warp the full-resolution source
            with the upsampled motion) or ``bicubic``.
    Outputs:
        side_by_side, draw_kp: the layout of ``RenderedFrames.frames`` (see :data:`VIEWS`).
        extra_views: further layouts rendered in the same pass (``RenderedFrames.views``).
        with_motion: also return the dense motion (deformation) and the occlusion mask.
    Execution:
        batch_size: driving frames per forward pass (``None``: :func:`default_batch_size`).
        dtype: ``float32`` | ``bfloat16`` | ``float16`` (or a ``torch.dtype``); resolved per device by
            :func:`~tpsmm.core.device.resolve_dtype` (CPUs without native bf16 use float32);
            ``None`` = the model's own dtype, unchanged.
        channels_last: channels_last convolutions (faster on most CPUs and GPUs; copies the networks).
            ``None`` (the default of the API, CLI and nodes alike): on in bfloat16/float16, off in
            float32, where it would move the output by ~1e-4 from the reference (see :attr:`use_channels_last`).
        compile: ``torch.compile`` the renderer (``True`` or a backend name).
        backend: what runs the networks: ``auto`` (the fastest installed, see
            :mod:`tpsmm.core.backends.choice`), ``torch``, ``onnxruntime`` or ``openvino`` (exported graphs,
            cached per model; channels_last/compile apply to ``torch`` only).
        graphs: a graph backend: a ``tpsmm export`` folder to use instead of the cache.
    """

    mode: str = "relative"
    reference_frame: int | str = 0
    strength: float = 1.0
    smoothing: str = "off"
    smoothing_strength: float = 0.5
    background: bool = False
    crop: CropBox | None = None
    feather: int = 16
    driving_crop: CropBox | None = None
    output_size: Size | None = None
    upscale: str = "flow"
    side_by_side: bool = False
    draw_kp: bool = False
    extra_views: tuple[str, ...] = field(default=())
    with_motion: bool = False
    batch_size: int | None = None
    dtype: object = "float32"
    channels_last: bool | None = None
    compile: bool | str = False
    backend: str = "auto"
    graphs: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ModelError(f"expected one of {', '.join(MODES)}, got {self.mode!r}", field="mode")
        ref = self.reference_frame
        if ref != "best" and (isinstance(ref, bool) or not isinstance(ref, int)):
            raise FieldError(f"expected a whole frame index or 'best', got {ref!r}", field="reference_frame")
        _finite("strength", self.strength)
        if self.mode != "relative" and (ref != 0 or self.strength != 1.0):
            raise FieldError(f"applies to mode 'relative' only (got mode {self.mode!r})",
                             field="reference_frame" if ref != 0 else "strength")
        check_smoothing(self.smoothing, self.smoothing_strength)
        for name in ("crop", "driving_crop"):
            box = getattr(self, name)
            if box is not None and not isinstance(box, CropBox):
                raise FieldError(f"expected a CropBox, got {type(box).__name__}", field=name)
        if isinstance(self.feather, bool) or not isinstance(self.feather, int) or self.feather < 0:
            raise FieldError(f"expected a whole number >= 0, got {self.feather!r}", field="feather")
        for name in ("background", "side_by_side", "draw_kp", "with_motion", "channels_last"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (name == "channels_last" and value is None):
                raise FieldError(f"expected True or False, got {value!r}", field=name)
        if self.output_size is not None:
            object.__setattr__(self, "output_size", Size.of(self.output_size, field="output_size", least=2))
        if self.upscale not in UPSCALE_MODES:
            raise FieldError(f"expected one of {', '.join(UPSCALE_MODES)}, got {self.upscale!r}", field="upscale")
        object.__setattr__(self, "extra_views", tuple(self.extra_views))
        for view in self.extra_views:
            if view not in VIEWS:
                raise FieldError(f"{view!r} is not one of {', '.join(VIEWS)}", field="extra_views")
        if self.batch_size is not None and (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int)
                                            or self.batch_size < 1):
            raise FieldError(f"expected a whole number >= 1, got {self.batch_size!r}", field="batch_size")
        if self.dtype is not None:
            parse_dtype(self.dtype, what="dtype")
        check_backend(self.backend)

    @property
    def use_channels_last(self) -> bool:
        """:attr:`channels_last` with ``None`` resolved: on unless the dtype is float32 (or the model's own)."""
        if self.channels_last is not None:
            return bool(self.channels_last)
        return self.dtype is not None and parse_dtype(self.dtype) != torch.float32

    @property
    def view(self) -> str:
        """The layout of the main output (one of :data:`VIEWS`)."""
        base = "side-by-side" if self.side_by_side else "result"
        return base + "+kp" if self.draw_kp else base

    @property
    def views(self) -> tuple[str, ...]:
        """Every layout to render: the main one first, then ``extra_views`` (without repeats)."""
        return tuple(dict.fromkeys((self.view, *self.extra_views)))

    @property
    def needs_driving_frames(self) -> bool:
        """Whether rendering needs the driving frames besides their keypoints (background motion, side-by-side)."""
        return self.background or any(v.startswith("side-by-side") for v in self.views)

    @property
    def two_pass(self) -> bool:
        """Whether every driving keypoint is needed before the first frame can be rendered."""
        return self.mode == "relative" and self.reference_frame != 0

    def replace(self, **changes) -> "AnimationOptions":
        """A copy with ``changes`` applied (checked again)."""
        return replace(self, **changes)
