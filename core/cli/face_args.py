"""``tpsmm animate`` face options: ``--crop face``, ``--driving-crop face|x,y,w,h`` and their face indices.

``--crop`` / ``--driving-crop`` take ``face`` or a box ``x,y,w,h``; :func:`resolve_crops` turns ``face`` into
a :class:`~tpsmm.core.media.crop.CropBox` (:func:`~tpsmm.core.face.framing.find_face` on the photo,
:func:`~tpsmm.core.face.track.driving_box` on the driving clip, streamed) before the animation
options are built.
"""
from __future__ import annotations

import argparse

import torch

__all__ = ["FACE", "crop_arg", "face_index", "add_face_arguments", "resolve_crops", "EPILOG"]

FACE = "face"
EPILOG = """\
faces: --crop face finds the largest face of the source (--face-index N: the Nth from the left, 0 first),
  frames it like the training crops (a square 1.6x the face, a little above its centre; padded past the
  border), animates it and pastes it back into the full photo. --driving-crop face finds one still box for
  the whole driving clip (faces detected every 5th frame and tracked; --driving-face-index N). Detector
  weights: --face-weights FILE, else yunet_final.pth in the torch hub cache, else kornia's download.
"""


def crop_arg(option: str):
    """argparse type for ``option``: ``"face"`` or a box ``"x,y,w,h"`` (-> :class:`CropBox`)."""
    def parse(text: str):
        from ..media.crop import CropBox
        from ..media.errors import FieldError

        if text.strip().lower() == FACE:
            return FACE
        try:
            return CropBox.parse(text)
        except FieldError as exc:
            raise argparse.ArgumentTypeError(exc.detail + " (or 'face')") from None
    return parse


def face_index(text: str) -> int:
    """argparse type of ``--face-index``/``--driving-face-index``: a whole number >= 0 (0 = the leftmost face)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 (faces count from the left, 0 = the "
                                         f"leftmost), got {text!r}")
    return value


def add_face_arguments(a) -> None:
    """Add the face options with ``a = parser.add_argument`` (``--crop`` itself stays with the crop options)."""
    a("--face-index", type=face_index, metavar="N", help="--crop face: the Nth face from the left (0 first; default: "
                                                   "the largest)")
    a("--driving-crop", type=crop_arg("--driving-crop"), metavar="face|x,y,w,h",
      help="use this region of every driving frame: 'face' (one still box around the moving face) or x,y,w,h")
    a("--driving-face-index", type=face_index, metavar="N", help="--driving-crop face: the Nth face from the left in the "
                                                          "first frame with a face (default: the largest)")
    a("--face-weights", metavar="FILE", help="YuNet face detector weights (yunet_final.pth) for the face options")


def _check(args) -> None:
    if args.face_index is not None and args.crop != FACE:
        raise ValueError("--face-index needs --crop face")
    if args.driving_face_index is not None and args.driving_crop != FACE:
        raise ValueError("--driving-face-index needs --driving-crop face")


def resolve_crops(args, photo: torch.Tensor):
    """``(crop, driving_crop)`` as :class:`CropBox` or ``None``, with ``face`` found on ``photo``/``args.driving``.

    A manual box must lie inside its image; a face box may extend past the border (it is padded).

    Args:
        args: the parsed ``tpsmm animate`` arguments (``crop``, ``driving_crop``, ``face_index``,
            ``driving_face_index``, ``face_weights``, ``driving``, ``max_frames``).
        photo: the source ``[H, W, 3]`` float in ``[0, 1]`` (torch).

    Raises:
        FaceError: (an ``InputError``) one line: no face, face too small or lost, weights missing or foreign.
    """
    from ..face.framing import find_face
    from ..face.detect import load_face_detector
    from ..face.track import driving_box
    from ..media.video import VideoReader

    _check(args)
    crop, driving_crop = args.crop, args.driving_crop
    if crop is not None and crop != FACE:
        crop.check(photo.shape[1], photo.shape[0])                     # a manual box must lie inside
    if driving_crop is not None and driving_crop != FACE:
        with VideoReader(args.driving, max_frames=1) as reader:
            height, width = reader.frame_size
        try:
            driving_crop.check(width, height)
        except ValueError as exc:
            raise ValueError(f"--driving-crop: {exc} (the driving frames)") from None
    if FACE not in (crop, driving_crop):
        return crop, driving_crop
    detector = load_face_detector(args.face_weights)
    if crop == FACE:
        crop = find_face(photo, index=args.face_index, detector=detector, what=f"--source {args.source}")
    if driving_crop == FACE:
        with VideoReader(args.driving, max_frames=args.max_frames) as reader:
            driving_crop = driving_box(reader, index=args.driving_face_index, detector=detector,
                                       what=f"--driving {args.driving}")
    return crop, driving_crop
