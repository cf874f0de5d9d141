"""Converting user images (ComfyUI IMAGE layout) to model input and back.

User-facing layout: float ``[H, W, C]`` or ``[B, H, W, C]`` in ``[0, 1]`` (ComfyUI's IMAGE), as a torch
tensor or numpy array. Model layout: float ``[B, 3, S, S]``.

Policy: 1 channel is repeated to RGB, 4 (RGBA) drops alpha; other channel counts are refused. Values
more than 1e-3 outside ``[0, 1]`` are refused (uint8 data must be divided by 255 first); tiny
excursions are clamped. Frames of any size are resized to the model size ``S x S`` with antialiased
bilinear interpolation (torch ``interpolate(..., antialias=True)``); non-square frames are stretched,
as the release does — crop first to keep the aspect ratio.
"""
from __future__ import annotations

import numpy as np
import torch
from einops import rearrange

from .errors import FieldError, InputError
from .resize import resize

__all__ = ["FieldError", "InputError", "check_user_images", "to_model_layout", "to_user_layout", "resize_frames"]


def check_user_images(images, *, name: str, single: bool = False, channels: tuple[int, ...] = (1, 3, 4),
                      values: bool = True) -> torch.Tensor:
    """Validate user images (the one image validator of the package) -> ``[B, H, W, C]``.

    Args:
        images: ``[H,W,C]`` / ``[B,H,W,C]`` tensor or ndarray, float in ``[0,1]``, C in 1 (grey), 3, 4 (alpha dropped).
        name: argument name used in error messages.
        single: require exactly one image (``[H,W,C]`` or ``[1,H,W,C]``).
        channels: the channel counts accepted.
        values: check the dtype and the range and return float RGB ``[B,H,W,3]`` in ``[0,1]`` (grey
            repeated, alpha dropped); ``False`` checks the layout alone and returns the batch as given
            (for helpers that draw or cut any image, e.g. uint8 frames).

    Raises :class:`InputError` naming ``name`` for the wrong type, rank, channel count, dtype, an empty
    batch, or values outside ``[0, 1]`` (NaN and inf included). Tiny excursions (<= 1e-3) are clamped.
    The result is a new tensor or a view; the input is never modified.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise InputError(f"expected a tensor or array, got {type(images).__name__}", field=name)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise InputError(f"expected [H,W,C] or [B,H,W,C], got shape {tuple(images.shape)}", field=name)
    if single and images.shape[0] != 1:
        raise InputError(f"expected one image, got a batch of {images.shape[0]}", field=name)
    if images.shape[0] == 0:
        raise InputError("the image batch is empty", field=name)
    c = images.shape[-1]
    if c not in channels:
        allowed = " or ".join(filter(None, (", ".join(map(str, channels[:-1])), str(channels[-1]))))
        raise InputError(f"expected {allowed} channels (last axis), got {c} (shape {tuple(images.shape)})", field=name)
    if not values:
        return images
    if not images.is_floating_point():
        raise InputError(f"expected float values in [0,1], got dtype {images.dtype} (divide by 255)", field=name)
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-3 or hi > 1 + 1e-3 or not np.isfinite([lo, hi]).all():
        raise InputError(f"values must lie in [0,1], got range [{lo:.4g}, {hi:.4g}]", field=name)
    x = images[..., :3] if c == 4 else (images.expand(*images.shape[:-1], 3) if c == 1 else images)
    return x.clamp(0, 1) if lo < 0 or hi > 1 else x


def to_model_layout(images, *, name: str, device: torch.device | str, dtype: torch.dtype,
                    size: int | None = None, single: bool = False) -> torch.Tensor:
    """``[H,W,C]`` / ``[B,H,W,C]`` user images -> ``[B,3,S,S]`` model input (checked by :func:`check_user_images`).

    Args:
        images: tensor or ndarray in ``[0,1]``.
        name: argument name used in error messages.
        size: model size ``S`` to resize to (``None`` keeps the size).
        single: require exactly one image (``[H,W,C]`` or ``[1,H,W,C]``).
    """
    x = check_user_images(images, name=name, single=single)
    x = rearrange(x, "b h w c -> b c h w").to(device=device, dtype=dtype).clamp(0, 1)
    if size is not None:
        x = resize_frames(x, size)
    return x.contiguous()


def resize_frames(frames: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``[B,C,H,W]`` to ``size`` (int = square) by the ``model`` policy of :mod:`tpsmm.core.media.resize`."""
    return resize(frames, size, policy="model")


def to_user_layout(frames: torch.Tensor) -> torch.Tensor:
    """``[B,C,H,W]`` -> ``[B,H,W,C]`` float32 on CPU (ComfyUI IMAGE)."""
    return rearrange(frames, "b c h w -> b h w c").float().cpu().contiguous()
