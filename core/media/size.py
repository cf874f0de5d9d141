"""Frame sizes, one convention everywhere: :class:`Size` is ``(height, width)``, like a tensor's ``[..., H, W]``.

Only text meant for people is written width first (``"1024x768"``, as ``ffmpeg`` and image viewers
write it): :func:`parse_size` reads it and :meth:`Size.__str__` writes it. In code the order is
always ``size.height, size.width`` (or ``h, w = size``).
"""
from __future__ import annotations

import math
from typing import NamedTuple

from .errors import FieldError, InputError

__all__ = ["Size", "parse_size", "check_aspect"]


class Size(NamedTuple):
    """A frame size ``(height, width)`` in pixels."""

    height: int
    width: int

    @classmethod
    def of(cls, value: "int | tuple[int, int] | Size", *, field: str = "size", least: int = 1) -> "Size":
        """An int (a square) or ``(height, width)`` of whole numbers ``>= least`` -> :class:`Size`;
        :class:`FieldError` naming ``field`` otherwise."""
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value, value)
        try:
            h, w = value
            ok = all(isinstance(v, int) and not isinstance(v, bool) or _is_np_int(v) for v in (h, w))
        except (TypeError, ValueError):
            ok = False
        if not ok or min(int(h), int(w)) < least:
            raise FieldError(f"expected an int or (height, width) of whole numbers >= {least}, got {value!r}",
                             field=field)
        return cls(int(h), int(w))

    @classmethod
    def of_image(cls, images) -> "Size":
        """The size of user-layout images ``[..., H, W, C]``."""
        return cls(int(images.shape[-3]), int(images.shape[-2]))

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def _is_np_int(v) -> bool:
    return type(v).__module__ == "numpy" and hasattr(v, "dtype") and v.dtype.kind in "iu"


def parse_size(text: str, *, least: int = 2) -> Size:
    """``"N"`` (a square) or ``"WxH"`` (width first, as people write it) -> :class:`Size`.

    The one parser of sizes given as text (``tpsmm animate --output-size``). ``ValueError`` quoting the text.
    """
    try:
        parts = [int(v) for v in str(text).lower().split("x")]
        width, height = parts * 2 if len(parts) == 1 else parts
    except ValueError:
        raise ValueError(f"expected N or WxH (e.g. 512 or 1024x768), got {text!r}") from None
    if min(width, height) < least:
        raise ValueError(f"sizes must be >= {least}, got {text!r}")
    return Size(height, width)


def check_aspect(source: Size, driving: Size, *, allow_stretch: bool) -> None:
    """Refuse a source and driving frames of different shapes (both get stretched to the model's square,
    which distorts the motion) unless ``allow_stretch``; :class:`InputError` naming both sizes."""
    if allow_stretch or abs(math.log((source.width / source.height) / (driving.width / driving.height))) < 0.02:
        return
    raise InputError(f"source is {source} but the driving frames are {driving}: different shapes are stretched "
                     "differently to the model's square and distort the motion; crop both to the same aspect ratio "
                     "(e.g. with a crop) or enable allow_stretch")
