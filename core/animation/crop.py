"""Crop a region of a large photo, animate it at the model size, paste the result back in place.

Layout: user images ``[B, H, W, C]`` / ``[H, W, C]`` float in ``[0, 1]`` (ComfyUI IMAGE). A crop box
is given in pixels of the full image: ``x`` (column of the left edge), ``y`` (row of the top edge),
width ``w`` and height ``h``. Pasting blends the animated patch into the photo with a feathered
mask (1 inside, falling linearly to 0 over ``feather`` pixels towards the box edges), so seams
between the animated region and the still photo are hidden.

Example::

    box = CropBox.parse("600,120,512,512")
    box.check(width=1920, height=1080)
    region = crop(photo[None], box)                  # [1,512,512,3] -> animate it
    frames = paste_back(photo, animated, box)        # [T,1080,1920,3]
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

__all__ = ["CropBox", "crop", "feather_mask", "paste_back", "resize_images"]


@dataclass(frozen=True)
class CropBox:
    """A pixel rectangle of an image.

    Attributes:
        x: column of the left edge (0-based).
        y: row of the top edge (0-based).
        w: width in pixels (> 0).
        h: height in pixels (> 0).
    """

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"crop box {self}: width and height must be positive")
        if self.x < 0 or self.y < 0:
            raise ValueError(f"crop box {self}: x and y must be >= 0")

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"

    @classmethod
    def parse(cls, text: str) -> "CropBox":
        """``"x,y,w,h"`` (integers, optional spaces) -> :class:`CropBox`; ``ValueError`` naming ``--crop``."""
        parts = [p.strip() for p in str(text).split(",")]
        try:
            if len(parts) != 4:
                raise ValueError
            x, y, w, h = (int(p) for p in parts)
        except ValueError:
            raise ValueError(f"--crop: expected four integers x,y,w,h (e.g. 600,120,512,512), got {text!r}") from None
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise ValueError(f"--crop: x,y must be >= 0 and w,h > 0, got {text!r}")
        return cls(x=x, y=y, w=w, h=h)

    def check(self, width: int, height: int) -> None:
        """Raise ``ValueError`` unless the box lies inside a ``width x height`` image."""
        if self.x + self.w > width or self.y + self.h > height:
            raise ValueError(f"crop box {self} lies outside the {width}x{height} image")


def _batched(images: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(images).__name__}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"{name}: expected [H,W,C] or [B,H,W,C], got shape {tuple(images.shape)}")
    return images


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize user-layout ``[B,H,W,C]`` to ``size = (h, w)``: antialiased bicubic, clamped to ``[0,1]``.

    Returns the input unchanged when the size already matches; float32 otherwise.
    """
    images = _batched(images, "images")
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    x = rearrange(images.float(), "b h w c -> b c h w")
    x = F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    return rearrange(x, "b c h w -> b h w c")


def crop(images: torch.Tensor, box: CropBox) -> torch.Tensor:
    """``[B,H,W,C]`` (or ``[H,W,C]``) -> ``[B,box.h,box.w,C]`` (a view); checks the box fits."""
    images = _batched(images, "images")
    box.check(images.shape[2], images.shape[1])
    return images[:, box.y:box.y + box.h, box.x:box.x + box.w]


def feather_mask(h: int, w: int, feather: int, *, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[h, w]`` blend weights in ``[0, 1]``: 1 inside, a linear ramp over ``feather`` pixels at each edge.

    Pixel ``i`` pixels from the nearest edge (0 for the border row/column) gets
    ``min(1, (i + 0.5) / feather)``; ``feather = 0`` gives all ones. (:func:`paste_back` limits ``feather`` to half the
    box side, so the centre of a small box still reaches 1.)
    """
    if h <= 0 or w <= 0:
        raise ValueError(f"feather_mask: h and w must be positive, got {h}x{w}")
    if feather < 0:
        raise ValueError(f"feather_mask: feather must be >= 0, got {feather}")
    if feather == 0:
        return torch.ones(h, w, device=device, dtype=dtype)
    rows = torch.arange(h, device=device, dtype=torch.float32)
    cols = torch.arange(w, device=device, dtype=torch.float32)
    dy = torch.minimum(rows, h - 1 - rows)
    dx = torch.minimum(cols, w - 1 - cols)
    ramp = lambda d: ((d + 0.5) / feather).clamp(0, 1)  # noqa: E731
    return (ramp(dy)[:, None] * ramp(dx)[None, :]).to(dtype)


def paste_back(full: torch.Tensor, patches: torch.Tensor, box: CropBox, *, feather: int = 16) -> torch.Tensor:
    """Blend animated ``patches`` into the ``box`` of the still image ``full``.

    Args:
        full: ``[H, W, 3]`` or ``[1, H, W, 3]`` the whole photo (float ``[0,1]``).
        patches: ``[T, h', w', 3]`` animated region, any size (resized to ``box.h x box.w`` with
            antialiased bicubic).
        box: where the region was cropped from.
        feather: width in pixels of the blend ramp at the box edges (0 = hard paste).

    Returns:
        New ``[T, H, W, 3]`` float tensor on ``patches``' device (inputs are not modified).
    """
    full = _batched(full, "full")
    patches = _batched(patches, "patches")
    if full.shape[0] != 1:
        raise ValueError(f"full: expected one image, got a batch of {full.shape[0]}")
    if full.shape[-1] != patches.shape[-1]:
        raise ValueError(f"paste_back: full has {full.shape[-1]} channels, patches {patches.shape[-1]}")
    box.check(full.shape[2], full.shape[1])
    t = patches.shape[0]
    region = resize_images(patches, (box.h, box.w)).to(full.dtype if full.is_floating_point() else torch.float32)
    full = full.to(device=region.device, dtype=region.dtype)
    out = full.expand(t, -1, -1, -1).clone()
    mask = feather_mask(box.h, box.w, min(feather, box.h // 2, box.w // 2), device=region.device,
                        dtype=region.dtype)[None, :, :, None]
    still = out[:, box.y:box.y + box.h, box.x:box.x + box.w]
    out[:, box.y:box.y + box.h, box.x:box.x + box.w] = mask * region + (1 - mask) * still
    return out
