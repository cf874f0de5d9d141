"""Still-image IO and the frame conversions shared with :mod:`tpsmm.core.media.video`.

Conventions
-----------
* Images handed to the model: ``float32 [H, W, 3]`` RGB in ``[0, 1]`` (:func:`load_image`).
* Video frames: ``uint8 [H, W, 3]`` RGB; batches ``uint8 [T, H, W, 3]``.
* float → uint8 is ``round(clip(x, 0, 1) * 255)`` (skimage ``img_as_ubyte`` rounding, as the reference).
* Alpha is dropped, never composited. Grayscale becomes three equal channels. 16-bit images keep
  their precision in :func:`load_image` (divided by 65535).
* Outputs are written atomically: to a hidden temporary sibling, renamed on success.
"""
from __future__ import annotations

import os
import re
import stat
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import UnsafeOutputError, atomic_write, check_replaceable

__all__ = [
    "VideoError", "IMAGE_EXTENSIONS", "check_input_file", "load_image", "load_image_uint8", "save_image",
    "to_uint8_frames",
    "resize_uint8", "list_image_files",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
"""Lower-case extensions treated as still images (by readers and image folders)."""


class VideoError(RuntimeError):
    """A video or image file cannot be read or written; the one-line message names the file."""


def check_input_file(path: str, *, folder_ok: bool = False) -> None:
    """Refuse (:class:`VideoError`) a missing input, a folder (unless ``folder_ok``), and anything that is not a
    regular file: reading a FIFO, socket or device would hang or never end."""
    if not os.path.exists(path):
        raise VideoError(f"{path}: file not found")
    if os.path.isdir(path):
        if folder_ok:
            return
        raise VideoError(f"{path}: is a folder, not an image file")
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise VideoError(f"{path}: is not a regular file (a FIFO, socket or device); refusing to read it")


def _open_pil(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` with Pillow, apply EXIF orientation, raise :class:`VideoError` on failure."""
    path = os.fspath(path)
    check_input_file(path)
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im)
    except Image.DecompressionBombError as exc:
        raise VideoError(f"{path}: too many pixels to be a sensible image ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise VideoError(f"{path}: not a readable image ({exc})") from None


def _to_rgb(im: Image.Image) -> Image.Image:
    """8-bit modes → RGB; alpha is dropped (not composited), palettes go through RGBA first."""
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    return im.convert("RGB")


def _pil_to_float(im: Image.Image) -> np.ndarray:
    """Pillow image of any mode → float32 ``[H, W, 3]`` in ``[0, 1]``."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grayscale (Pillow opens 16-bit PNG/TIFF as I;16 or I); full scale is 65535.
        a = np.asarray(im, dtype=np.float32) / 65535.0
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float32)  # float images are assumed to already be in [0, 1]
    else:
        return np.asarray(_to_rgb(im), dtype=np.float32) / 255.0
    a = np.clip(a, 0.0, 1.0)
    return np.repeat(a[..., None], 3, axis=-1)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 ``[H, W, 3]`` RGB in ``[0, 1]``.

    Grayscale gives three equal channels; RGBA / LA / transparent palettes lose their alpha
    (dropped, not composited onto any background); 16-bit grayscale keeps 16-bit precision;
    EXIF orientation is applied. Raises :class:`VideoError` for a missing file or a file that
    is not an image.
    """
    return _pil_to_float(_open_pil(path))


def load_image_uint8(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 ``[H, W, 3]`` RGB (same conventions as :func:`load_image`)."""
    im = _open_pil(path)
    if im.mode in ("RGB", "RGBA", "L", "P", "LA", "PA", "CMYK", "YCbCr", "1"):
        return np.asarray(_to_rgb(im), dtype=np.uint8)
    return to_uint8_frames(_pil_to_float(im))


def _to_numpy(x: Any) -> np.ndarray:
    """numpy array or torch tensor (any device / float dtype) → numpy array."""
    if type(x).__module__.split(".")[0] == "torch":
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def to_uint8_frames(frames: Any, *, name: str = "frames") -> np.ndarray:
    """Convert one frame or a batch to uint8, keeping the layout.

    Args:
        frames: ``[H, W, 3]`` or ``[T, H, W, 3]``; uint8 (used as is) or float numpy/torch in
            ``[0, 1]`` (clipped, ``round(x * 255)``). Grayscale ``[H, W]`` is not accepted here.
        name: argument name used in error messages.

    Returns:
        uint8 array with the same shape (C-contiguous).
    """
    a = _to_numpy(frames)
    if a.ndim not in (3, 4) or a.shape[-1] != 3:
        raise ValueError(f"{name}: expected [H,W,3] or [T,H,W,3] RGB, got shape {tuple(a.shape)}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8 or float in [0,1], got dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def resize_uint8(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 ``[H, W, 3]`` to ``size = (h, w)``: the ``model`` policy of :mod:`tpsmm.core.media.resize`
    (antialiased bilinear) done by Pillow on decoded frames."""
    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    return np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BILINEAR))


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_image_files(folder: str | os.PathLike) -> list[str]:
    """Image files directly inside ``folder`` (by :data:`IMAGE_EXTENSIONS`), natural-sorted by name.

    Natural sort means ``f2.png`` comes before ``f10.png``; zero-padded names sort as plain text.
    Hidden files (leading ``.``) are ignored.
    """
    folder = os.fspath(folder)
    names = [n for n in os.listdir(folder)
             if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
             and os.path.isfile(os.path.join(folder, n))]
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


_PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP",
                ".tif": "TIFF", ".tiff": "TIFF"}


def save_image(path: str | os.PathLike, image: Any, *, overwrite: bool = False) -> None:
    """Write one image atomically (temporary sibling, then rename).

    Args:
        path: destination; the format comes from the extension (png, jpg/jpeg (quality 95),
            bmp, webp, tif/tiff).
        image: ``[H, W, 3]`` uint8, or float numpy/torch in ``[0, 1]`` (rounded to 8 bits);
            ``[H, W]`` and ``[H, W, 1]`` grayscale are written as three equal channels.
        overwrite: replace an existing regular file; otherwise an existing ``path`` raises VideoError. A
            symbolic link, device, FIFO, socket or folder at ``path`` is never replaced.
    """
    path = os.fspath(path)
    fmt = _PIL_FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise VideoError(f"{path}: unsupported image extension (use one of {', '.join(_PIL_FORMATS)})")
    if os.path.lexists(path) and not overwrite:
        raise VideoError(f"{path}: already exists (pass overwrite=True to replace it)")
    try:
        check_replaceable(path)
    except UnsafeOutputError as exc:
        raise VideoError(str(exc)) from None
    if os.path.isdir(path):
        raise VideoError(f"{path}: is a folder, not an image file; refusing to replace it")
    a = _to_numpy(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    a = to_uint8_frames(a, name="image")
    if a.ndim != 3:
        raise ValueError(f"image: expected one [H,W,3] image, got shape {tuple(a.shape)}")
    atomic_write(path, lambda tmp: Image.fromarray(a).save(tmp, format=fmt,
                                                         **({"quality": 95} if fmt == "JPEG" else {})))
