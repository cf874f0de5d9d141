"""The one resize policy of tpsmm: which interpolation every image and frame gets, and why.

Two kinds of resizing, each with one interpolation (both antialiased, so shrinking does not alias):

============  =========================================================  ===========================
policy        used for                                                   interpolation
============  =========================================================  ===========================
``model``     frames going into the networks (any size -> ``S x S``),   bilinear, antialiased,
              decoded frames of another size (``resize_uint8``)          result in the input dtype
``picture``   pictures a person looks at: the model's output enlarged    bicubic, antialiased,
              to the output size, patches pasted back into a photo,      clamped to ``[0, 1]``,
              side-by-side panels                                        float32
============  =========================================================  ===========================

Bilinear into the model matches how the released checkpoints were fed (smooth, no overshoot);
bicubic for pictures keeps edges sharper when enlarging. Motion fields and masks are not pictures:
they are functions of normalised coordinates and are resampled bilinearly with
``align_corners=True`` where they are used (:mod:`tpsmm.core.animation.hires`, the inpainting network).
Non-square frames are stretched to the model's square, as the release does: crop first to keep the
aspect ratio.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from .size import Size

__all__ = ["RESIZE_POLICIES", "resize"]

RESIZE_POLICIES = {"model": "bilinear", "picture": "bicubic"}
"""Policy -> ``F.interpolate`` mode (always ``antialias=True``, ``align_corners=False``)."""


def resize(images: torch.Tensor, size: int | tuple[int, int], *, policy: str = "picture",
           layout: str = "bchw") -> torch.Tensor:
    """Resize a batch of images to ``size`` (int = square, else ``(height, width)``) by ``policy``.

    Args:
        images: ``[B, C, H, W]`` (``layout="bchw"``) or ``[B, H, W, C]`` (``layout="bhwc"``, ComfyUI's IMAGE),
            values in ``[0, 1]``.
        policy: ``"model"`` or ``"picture"`` (see the module docstring).

    Returns:
        The same layout at the new size: ``model`` keeps the input dtype, ``picture`` gives float32; both are
        clamped to ``[0, 1]``. An input already at ``size`` is returned unchanged.
    """
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"policy: expected one of {', '.join(RESIZE_POLICIES)}, got {policy!r}")
    if layout not in ("bchw", "bhwc") or images.ndim != 4:
        raise ValueError(f"resize: expected a 4-D batch in layout bchw or bhwc, got {layout!r} "
                         f"with shape {tuple(images.shape)}")
    hw = Size.of(size)
    x = images if layout == "bchw" else rearrange(images, "b h w c -> b c h w")
    if tuple(x.shape[2:]) == hw:
        return images
    out = F.interpolate(x.float(), size=hw, mode=RESIZE_POLICIES[policy], align_corners=False, antialias=True)
    out = out.clamp(0, 1)
    if policy == "model":
        out = out.to(images.dtype)
    return out if layout == "bchw" else rearrange(out, "b c h w -> b h w c")
