"""Crop a region of a large photo, animate it at the model size, paste the result back in place.

Layout: user images ``[B, H, W, C]`` / ``[H, W, C]`` float in ``[0, 1]`` (ComfyUI IMAGE). A crop box
is given in pixels of the full image: ``x`` (column of the left edge), ``y`` (row of the top edge),
width ``w`` and height ``h``. Pasting blends the animated patch into the photo with a feathered
mask (1 inside, falling linearly to 0 over ``feather`` pixels towards the box edges), so seams
between the animated region and the still photo are hidden.

A box may extend past the image border (a face near the edge, framed by :mod:`.face`): :func:`crop`
then pads the missing part by repeating the edge pixels (the box is never shifted off the face) and
:func:`paste_back` pastes only the part of the box that lies inside the photo.

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

from .errors import FieldError
from .images import check_user_images
from .resize import resize

__all__ = ["CropBox", "MIN_CROP_SIDE", "crop", "feather_mask", "paste_back", "resize_images"]

MIN_CROP_SIDE = 2   # pixels: the smallest region that can be resized to the model size


@dataclass(frozen=True)
class CropBox:
    """A pixel rectangle of an image.

    Attributes:
        x: column of the left edge (0-based; negative when the box starts left of the image).
        y: row of the top edge (0-based; negative when the box starts above the image).
        w: width in pixels (>= :data:`MIN_CROP_SIDE`).
        h: height in pixels (>= :data:`MIN_CROP_SIDE`).
    """

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if self.w < MIN_CROP_SIDE or self.h < MIN_CROP_SIDE:
            raise ValueError(f"crop box {self}: width and height must be at least {MIN_CROP_SIDE} pixels")

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"

    @classmethod
    def parse(cls, text: str, *, field: str = "crop") -> "CropBox":
        """``"x,y,w,h"`` (integers, optional spaces) -> :class:`CropBox`; :class:`FieldError` naming ``field``."""
        parts = [p.strip() for p in str(text).split(",")]
        try:
            if len(parts) != 4:
                raise ValueError
            x, y, w, h = (int(p) for p in parts)
        except ValueError:
            raise FieldError(f"expected four integers x,y,w,h (e.g. 600,120,512,512), got {text!r}",
                             field=field) from None
        if w < MIN_CROP_SIDE or h < MIN_CROP_SIDE or x < 0 or y < 0:
            raise FieldError(f"x,y must be >= 0 and w,h at least {MIN_CROP_SIDE}, got {text!r}", field=field)
        return cls(x=x, y=y, w=w, h=h)

    def check(self, width: int, height: int) -> None:
        """Raise ``ValueError`` unless the box lies inside a ``width x height`` image."""
        if self.inside(width, height):
            return
        if self.x >= width or self.y >= height or self.x + self.w <= 0 or self.y + self.h <= 0:
            raise ValueError(f"crop box {self} lies outside the {width}x{height} image (they do not overlap)")
        past = [f"{name} border ({what})" for name, bad, what in (
            ("left", self.x < 0, f"x = {self.x}"), ("top", self.y < 0, f"y = {self.y}"),
            ("right", self.x + self.w > width, f"x+w = {self.x + self.w} > {width}"),
            ("bottom", self.y + self.h > height, f"y+h = {self.y + self.h} > {height}")) if bad]
        raise ValueError(f"crop box {self} lies outside the {width}x{height} image: it extends past the "
                         f"{' and the '.join(past)}")

    def inside(self, width: int, height: int) -> bool:
        """Whether the whole box lies inside a ``width x height`` image."""
        return self.x >= 0 and self.y >= 0 and self.x + self.w <= width and self.y + self.h <= height

    def clip(self, width: int, height: int) -> "CropBox":
        """The part of the box inside a ``width x height`` image; ``ValueError`` when they do not overlap."""
        x0, y0 = max(self.x, 0), max(self.y, 0)
        x1, y1 = min(self.x + self.w, width), min(self.y + self.h, height)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"crop box {self} does not overlap the {width}x{height} image")
        return CropBox(x=x0, y=y0, w=x1 - x0, h=y1 - y0)


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """User-layout ``[B,H,W,C]`` to ``size = (h, w)`` by the ``picture`` policy of :mod:`tpsmm.core.media.resize`
    (unchanged when the size already matches; float32 otherwise)."""
    return resize(check_user_images(images, name="images", values=False), size, policy="picture", layout="bhwc")


def crop(images: torch.Tensor, box: CropBox) -> torch.Tensor:
    """``[B,H,W,C]`` (or ``[H,W,C]``) -> ``[B,box.h,box.w,C]``.

    A view when the box lies inside the images; a box that extends past the border must still overlap
    them, and the part outside is filled by repeating the edge pixels (the box keeps its place).
    """
    images = check_user_images(images, name="images", values=False)
    height, width = images.shape[1], images.shape[2]
    if box.inside(width, height):
        return images[:, box.y:box.y + box.h, box.x:box.x + box.w]
    part = box.clip(width, height)
    region = images[:, part.y:part.y + part.h, part.x:part.x + part.w]
    pad = (part.x - box.x, box.x + box.w - part.x - part.w, part.y - box.y, box.y + box.h - part.y - part.h)
    x = rearrange(region, "b h w c -> b c h w")
    x = F.pad(x if x.is_floating_point() else x.float(), pad, mode="replicate").to(images.dtype)
    return rearrange(x, "b c h w -> b h w c")


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
        box: where the region was cropped from; when it extends past the photo's border only the
            part inside the photo is pasted.
        feather: width in pixels of the blend ramp at the box edges (0 = hard paste).

    Returns:
        New ``[T, H, W, 3]`` float tensor on ``patches``' device (inputs are not modified).
    """
    full = check_user_images(full, name="full", values=False)
    patches = check_user_images(patches, name="patches", values=False)
    if full.shape[0] != 1:
        raise ValueError(f"full: expected one image, got a batch of {full.shape[0]}")
    if full.shape[-1] != patches.shape[-1]:
        raise ValueError(f"paste_back: full has {full.shape[-1]} channels, patches {patches.shape[-1]}")
    part = box.clip(full.shape[2], full.shape[1])
    t = patches.shape[0]
    region = resize_images(patches, (box.h, box.w)).to(full.dtype if full.is_floating_point() else torch.float32)
    full = full.to(device=region.device, dtype=region.dtype)
    out = full.expand(t, -1, -1, -1).clone()
    mask = feather_mask(box.h, box.w, min(feather, box.h // 2, box.w // 2), device=region.device,
                        dtype=region.dtype)[None, :, :, None]
    inner = (slice(None), slice(part.y - box.y, part.y - box.y + part.h), slice(part.x - box.x, part.x - box.x + part.w))
    mask, region = mask[inner], region[inner]
    still = out[:, part.y:part.y + part.h, part.x:part.x + part.w]
    out[:, part.y:part.y + part.h, part.x:part.x + part.w] = mask * region + (1 - mask) * still
    return out
