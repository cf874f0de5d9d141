"""Find a face in a photo and frame it the way the vox/ted training data was cropped.

The official checkpoints were trained on square crops in which the face is centred a little below the
middle with hair, ears and the top of the shoulders around it (the release's crop script). Measured on
the release's own vox-style driving clip (``shared/faces/talking.mp4``, 169 frames), the YuNet face box
``(x0, y0, x1, y1)`` of width ``w`` and height ``h`` relates to the square crop as:

* side = :data:`FRAMING_SCALE` ``* max(w, h)`` (1.56 measured on average; 1.6: a little more margin);
* centre = box centre moved up by :data:`FRAMING_SHIFT` ``* h`` (0.13 measured).

:func:`frame_face` applies this; the resulting square may extend past the image border - it is then
padded by :func:`~tpsmm.core.media.crop.crop`, never shifted off the face. Faces narrower than
:data:`MIN_FACE_SIZE` pixels are refused: their crop would be upscaled more than about 2x to the
model's 256 pixels and the animation would be a blur.

Example::

    box = find_face(photo, weights="yunet_final.pth")      # [H,W,3] float in [0,1] -> CropBox
    region = crop(photo, box)                                # animate it, then paste_back(photo, frames, box)
"""
from __future__ import annotations

import os
from typing import Sequence

import torch

from ..media.crop import CropBox
from .detect import FaceError, check_face_images, detect_faces, load_face_detector

__all__ = ["FRAMING_SCALE", "FRAMING_SHIFT", "MIN_FACE_SIZE", "frame_face", "check_face_index", "pick_face",
           "find_face"]

FRAMING_SCALE = 1.6     # crop side / longer side of the face box
FRAMING_SHIFT = 0.13    # crop centre above the face box centre, in face heights
MIN_FACE_SIZE = 64      # pixels: the narrowest face box accepted


def frame_face(face: torch.Tensor | Sequence[float], *, scale: float = FRAMING_SCALE,
               shift: float = FRAMING_SHIFT) -> CropBox:
    """The square training-style crop around one face box ``x0, y0, x1, y1`` (pixels; extra values ignored).

    ``side = round(scale * max(w, h))``, centred ``shift * h`` above the box centre; the box may extend past
    the image (negative ``x``/``y`` or beyond the right/bottom edge).
    """
    if scale <= 0:
        raise ValueError(f"scale: expected > 0, got {scale}")
    x0, y0, x1, y1 = (float(v) for v in list(face)[:4])
    w, h = x1 - x0, y1 - y0
    side = max(1, round(scale * max(w, h)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - shift * h
    return CropBox(x=round(cx - side / 2), y=round(cy - side / 2), w=side, h=side)


def check_face_index(index, *, what: str = "image") -> None:
    """Refuse a face index that is not ``None`` or a whole number >= 0 (faces count from the left, 0 = leftmost)."""
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise FaceError(f"{what}: face index {index!r}: expected a whole number >= 0 (faces count from the left, "
                        "0 = the leftmost)")


def pick_face(faces: torch.Tensor, index: int | None, *, what: str = "image") -> torch.Tensor:
    """One row of ``faces`` (``[N, 5]``, sorted left to right): the largest one, or number ``index`` from the left
    (0 = the leftmost; negative numbers are refused).

    Raises:
        FaceError: no face, a bad ``index``, or ``index`` out of range (the message gives the count).
    """
    check_face_index(index, what=what)
    if len(faces) == 0:
        raise FaceError(f"{what}: no face found")
    if index is None:
        area = (faces[:, 2] - faces[:, 0]) * (faces[:, 3] - faces[:, 1])
        return faces[int(area.argmax())]
    if index >= len(faces):
        raise FaceError(f"{what}: face index {index} is out of range: {len(faces)} face(s) found, numbered 0.."
                        f"{len(faces) - 1} from the left")
    return faces[index]


def check_face_size(face: torch.Tensor, *, min_size: int, what: str) -> None:
    """Refuse a face narrower than ``min_size`` pixels, with the reason."""
    width = float(face[2] - face[0])
    if width < min_size:
        raise FaceError(f"{what}: the face is too small ({width:.0f} px wide, at least {min_size} px needed: a "
                        f"smaller face would be upscaled into a blur); use a larger photo or a manual crop box")


def find_face(image: torch.Tensor, *, index: int | None = None, scale: float = FRAMING_SCALE,
              min_size: int = MIN_FACE_SIZE, weights: str | os.PathLike | None = None,
              detector: torch.nn.Module | None = None, search_dirs: Sequence[str] = (),
              download: bool = True, what: str = "image") -> CropBox:
    """The training-style square crop box around a face of a photo.

    Args:
        image: ``[H, W, 3]`` (or ``[1, H, W, 3]``) RGB, float in ``[0, 1]`` or uint8 (torch or numpy); at least
            ``min_size`` pixels on each side.
        index: ``None`` for the largest face, else the face's number counted from the left (0 = leftmost;
            negative numbers are refused).
        scale: crop side in face-box sides (:data:`FRAMING_SCALE`).
        min_size: narrowest face accepted, in pixels (:data:`MIN_FACE_SIZE`).
        weights, search_dirs, download: where the YuNet weights come from (:func:`load_face_detector`);
            ignored when ``detector`` is given.
        what: names the image in error messages.

    Returns:
        A square :class:`CropBox` in pixels of ``image`` (may extend past its border).

    Raises:
        FaceError: a bad image or index, no face, index out of range, face too small, or no detector weights.
    """
    images = check_face_images(image, what=what)
    if len(images) != 1:
        raise FaceError(f"{what}: expected one image [H,W,3], got a batch of {len(images)}")
    check_face_index(index, what=what)
    height, width = images.shape[1:3]
    if min(height, width) < min_size:
        raise FaceError(f"{what}: the image is {width}x{height} pixels, too small to hold a face of at least "
                        f"{min_size} px")
    image = images[0]
    detector = detector or load_face_detector(weights, search_dirs=search_dirs, download=download)
    face = pick_face(detect_faces(image, detector)[0], index, what=what)
    check_face_size(face, min_size=min_size, what=what)
    return frame_face(face, scale=scale)
