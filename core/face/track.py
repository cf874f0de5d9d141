"""One still crop box for a whole driving clip, from faces tracked on a stride of frames.

Like the release's crop script, the box does not follow the face frame by frame (that would remove the
head motion the model is meant to transfer, and jitter): faces are detected on every ``stride``-th frame,
the chosen face is tracked from sample to sample by overlap (IoU), each tracked face is framed like a
source face (:func:`~tpsmm.core.face.framing.frame_face`), and the result is the smallest square
covering all those frames - the face's motion plus the training-style margin.

Errors (:class:`~tpsmm.core.face.detect.FaceError`, one line each): a face is found in fewer than
half of the sampled frames (black or flat frames hold no face: :func:`~tpsmm.core.face.detect.plausible_faces`); the chosen face is lost in more than :data:`MAX_LOST` of the samples after it
first appears; the face is smaller than :data:`~tpsmm.core.face.framing.MIN_FACE_SIZE`.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torchvision.ops import box_iou

from ..media.crop import CropBox
from .framing import FRAMING_SCALE, MIN_FACE_SIZE, check_face_index, check_face_size, frame_face, pick_face
from .detect import FaceError, detect_faces, load_face_detector

__all__ = ["DRIVING_STRIDE", "MAX_LOST", "MIN_IOU", "driving_box", "track_face"]

DRIVING_STRIDE = 5      # detect on every 5th frame (the face moves little in 1/6 s)
MIN_IOU = 0.3           # a detection continues the track when it overlaps the last tracked box this much
MAX_LOST = 0.1          # fraction of samples (after the first sighting) the tracked face may be missing from
DETECT_BATCH = 8


def _chunks(frames) -> Iterator[torch.Tensor]:
    """``[T,H,W,3]`` tensor/array, an object with ``batches(n)``, or an iterable of chunks -> tensor chunks."""
    if hasattr(frames, "batches"):
        frames = frames.batches(DETECT_BATCH)
    elif isinstance(frames, (torch.Tensor, np.ndarray)):
        if frames.ndim != 4:
            raise FaceError(f"driving frames: expected [T,H,W,3], got shape {tuple(frames.shape)}")
        clip = frames
        frames = (clip[i:i + DETECT_BATCH] for i in range(0, len(clip), DETECT_BATCH))
    for chunk in frames:
        yield torch.from_numpy(np.ascontiguousarray(chunk)) if isinstance(chunk, np.ndarray) else chunk


def _sampled_faces(frames, detector, stride: int) -> Iterator[tuple[int, torch.Tensor]]:
    """``(frame index, [N,5] faces)`` for every ``stride``-th frame, detected in batches."""
    start, picked, numbers = 0, [], []
    for chunk in _chunks(frames):
        for i in range(len(chunk)):
            if (start + i) % stride == 0:
                picked.append(chunk[i])
                numbers.append(start + i)
        start += len(chunk)
        if len(picked) >= DETECT_BATCH:
            yield from zip(numbers, detect_faces(torch.stack(picked), detector))
            picked, numbers = [], []
    if picked:
        yield from zip(numbers, detect_faces(torch.stack(picked), detector))


def track_face(sampled: Iterable[tuple[int, torch.Tensor]], *, index: int | None = None,
               what: str = "driving video") -> tuple[list[torch.Tensor], int]:
    """Follow one face through ``(frame, faces)`` samples; returns its boxes and the number of samples.

    The face is chosen (largest, or ``index`` from the left) in the first sample with any face.
    """
    track, samples, with_face, lost = [], 0, 0, []
    for frame, faces in sampled:
        samples += 1
        with_face += bool(len(faces))
        if not track:
            if len(faces):
                track.append(pick_face(faces, index, what=f"{what} (frame {frame})"))
            continue
        overlap = box_iou(track[-1][None, :4], faces[:, :4])[0] if len(faces) else torch.zeros(0)
        if len(faces) and float(overlap.max()) >= MIN_IOU:
            track.append(faces[int(overlap.argmax())])
        else:
            lost.append(frame)
    if samples == 0:
        raise FaceError(f"{what}: the clip has no frames")
    if with_face * 2 < samples:
        raise FaceError(f"{what}: a face was found in only {with_face} of {samples} sampled frames; use a clip "
                        f"that shows the face, or give a box (--driving-crop x,y,w,h)")
    if len(lost) > MAX_LOST * (len(track) + len(lost)):
        hint = "" if index is not None else " (several faces? choose one with --driving-face-index)"
        raise FaceError(f"{what}: the chosen face disappears at frame {lost[0]} (missing in {len(lost)} of "
                        f"{len(track) + len(lost)} sampled frames){hint}")
    return track, samples


def driving_box(frames, *, index: int | None = None, stride: int = DRIVING_STRIDE, scale: float = FRAMING_SCALE,
                min_size: int = MIN_FACE_SIZE, weights: str | os.PathLike | None = None,
                detector: torch.nn.Module | None = None, search_dirs: Sequence[str] = (), download: bool = True,
                what: str = "driving video") -> CropBox:
    """One square crop box for a whole driving clip that keeps the face in view in every frame.

    Args:
        frames: ``[T, H, W, 3]`` RGB (torch or numpy, float in ``[0, 1]`` or uint8), an iterable of such
            ``[b, H, W, 3]`` chunks (a streamed video), or an object with ``batches(n)`` yielding them.
        index: ``None`` for the largest face, else its number from the left in the first frame with a face.
        stride: detect on every ``stride``-th frame.
        scale: crop side in face-box sides (see :mod:`.face`).
        min_size: narrowest face accepted (median over the track), in pixels.
        weights, detector, search_dirs, download: as in :func:`~tpsmm.core.face.framing.find_face`.

    Returns:
        A square :class:`CropBox` in pixels of the frames (may extend past the border; crop pads).
    """
    if stride < 1:
        raise ValueError(f"stride: expected >= 1, got {stride}")
    check_face_index(index, what=what)
    detector = detector or load_face_detector(weights, search_dirs=search_dirs, download=download)
    track, _ = track_face(_sampled_faces(frames, detector, stride), index=index, what=what)
    check_face_size(torch.stack(track).median(dim=0).values, min_size=min_size, what=what)
    squares = [frame_face(face, scale=scale) for face in track]
    x0, y0 = min(b.x for b in squares), min(b.y for b in squares)
    x1, y1 = max(b.x + b.w for b in squares), max(b.y + b.h for b in squares)
    side = max(x1 - x0, y1 - y0)
    return CropBox(x=(x0 + x1 - side) // 2, y=(y0 + y1 - side) // 2, w=side, h=side)
