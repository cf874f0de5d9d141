"""Find the videos of a data folder: layouts, entry kinds, the bad-entry policy, frame reading.

Layout (as released): ``ROOT/train/`` and ``ROOT/test/``; or a flat ``ROOT/`` split 80/20 by
:func:`scan_videos` (the rule of sklearn's ``train_test_split(test_size=0.2, random_state=split_seed)``
applied to the name-sorted entries, so the split depends only on the names). An entry is

* a video file (``.mp4 .mov .webm .gif .mkv .avi``), decoded with PyAV;
* a folder of frames (any name, e.g. the released ``id#clip.mp4/0000000.png``), natural-sorted by name;
* a frame strip: one ``.png/.jpg/.jpeg`` holding frames side by side (needs ``frame_shape``).

Policy for bad entries: unreadable files, folders without images, strips that do not fit ``frame_shape``
and entries with fewer than 2 frames are skipped with **one** warning listing them; when nothing usable
remains :class:`DataError` is raised (``no usable videos under ROOT/train: ...``).

Ids: the part of an entry's name before the first ``#`` (the whole name when there is none); the release
matched ``train/<id>*.mp4`` by prefix, which also caught ids that merely start with another id.
"""
from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import av
import numpy as np
from PIL import Image

from ..core.media.image_io import VideoError, list_image_files, load_image_uint8, resize_uint8
from ..core.media.video import VideoReader, probe_video

__all__ = ["DataError", "VIDEO_EXTENSIONS", "STRIP_EXTENSIONS", "VideoEntry", "scan_folder", "scan_videos",
           "common_frame_shape", "read_frames"]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".gif", ".mkv", ".avi")
STRIP_EXTENSIONS = (".png", ".jpg", ".jpeg")
_MAX_LISTED = 12


class DataError(ValueError):
    """A data folder (or a data-loading argument) cannot be used; the message names it."""


@dataclass(frozen=True)
class VideoEntry:
    """One usable video of a data set.

    Attributes:
        path: file or folder path. name: its base name (e.g. ``id10001#abc#00001.mp4``).
        video_id: the name before the first ``#`` (id sampling). num_frames: frames (from the container
            or the folder listing; >= 2). kind: ``"video"``, ``"folder"`` or ``"strip"``.
        height, width: native frame size. fps: frame rate (25 for folders and strips).
    """

    path: str
    name: str
    video_id: str
    num_frames: int
    kind: str = "video"
    height: int = 0
    width: int = 0
    fps: float = 25.0

def _shape(frame_shape) -> tuple[int, int] | None:
    if frame_shape is None:
        return None
    hw = (frame_shape, frame_shape) if isinstance(frame_shape, int) else tuple(frame_shape)[:2]
    if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw):
        raise DataError(f"frame_shape: expected a positive int or (height, width), got {frame_shape!r}")
    return int(hw[0]), int(hw[1])


def _candidates(folder: str) -> list[str]:
    """Names in ``folder`` that may be entries: sub-folders and video/strip files (hidden ones ignored)."""
    out = []
    for name in os.listdir(folder):
        ext = os.path.splitext(name)[1].lower()
        if name.startswith("."):
            continue
        if os.path.isdir(os.path.join(folder, name)) or ext in VIDEO_EXTENSIONS + STRIP_EXTENSIONS:
            out.append(name)
    return sorted(out)


def _count_packets(path: str) -> int:
    n = 0
    try:
        with av.open(path) as c:
            for packet in c.demux(c.streams.video[0]):
                n += packet.size > 0
    except av.FFmpegError:
        pass
    return n


def _inspect(folder: str, name: str, frame_shape) -> VideoEntry | str:
    """An entry, or the reason it cannot be used."""
    path = os.path.join(folder, name)
    ext = os.path.splitext(name)[1].lower()
    vid = name.split("#", 1)[0]
    try:
        if os.path.isdir(path):
            files = list_image_files(path)
            if not files:
                return "folder has no image files"
            with Image.open(files[0]) as im:
                w, h = im.size
            entry = VideoEntry(path, name, vid, len(files), "folder", h, w)
        elif ext in VIDEO_EXTENSIONS:
            info = probe_video(path)
            n = info.frame_count or _count_packets(path)
            entry = VideoEntry(path, name, vid, n, "video", info.height, info.width, info.fps)
        else:
            if frame_shape is None:
                return "frame strip needs frame_shape"
            with Image.open(path) as im:
                w, h = im.size
            fh, fw = frame_shape
            if h != fh or w % fw:
                return f"strip is {w}x{h}, not a row of {fw}x{fh} frames"
            entry = VideoEntry(path, name, vid, w // fw, "strip", fh, fw)
    except (VideoError, OSError, ValueError, av.FFmpegError) as exc:
        msg = str(exc)
        return "unreadable: " + (msg[len(path) + 2:] if msg.startswith(path + ": ") else msg)
    if entry.num_frames < 2:
        return f"too short ({entry.num_frames} frame{'s' if entry.num_frames != 1 else ''})"
    return entry


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_MAX_LISTED])
    return shown + (f"; and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _scan(folder: str, names: list[str], frame_shape, label: str) -> tuple[list[VideoEntry], list[str]]:
    if not names:
        raise DataError(f"no usable videos under {label}: it has no video files, frame folders or images")
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        found = list(pool.map(lambda n: _inspect(folder, n, frame_shape), names))
    entries = [e for e in found if isinstance(e, VideoEntry)]
    skipped = [f"{n} ({e})" for n, e in zip(names, found) if not isinstance(e, VideoEntry)]
    if not entries:
        raise DataError(f"no usable videos under {label}: {_listing(skipped)}")
    return entries, skipped


def _warn_skipped(skipped: list[str], total: int, label: str) -> None:
    if skipped:
        warnings.warn(f"skipped {len(skipped)} of {total} videos under {label}: {_listing(skipped)}",
                      RuntimeWarning, stacklevel=3)


def scan_folder(folder: str, *, frame_shape=None) -> list[VideoEntry]:
    """All usable entries directly inside ``folder`` (no split), sorted by name; see the module policy."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: data folder not found" if not os.path.exists(folder)
                        else f"{folder}: is not a folder")
    names = _candidates(folder)
    entries, skipped = _scan(folder, names, _shape(frame_shape), folder)
    _warn_skipped(skipped, len(names), folder)
    return entries


def _split_names(root: str, *, is_train: bool, split_seed: int) -> tuple[str, list[str], str]:
    """``(folder, names, label)`` of the requested split of ``root``."""
    train, test = os.path.join(root, "train"), os.path.join(root, "test")
    if os.path.isdir(train) or os.path.isdir(test):
        if not os.path.isdir(train) and is_train:
            raise DataError(f"{root}: has test/ but no train/ folder")
        folder = train if is_train else test
        if not os.path.isdir(folder):
            raise DataError(f"{folder}: not found (a data folder with train/ needs test/ for evaluation)")
        return folder, _candidates(folder), folder
    names = _candidates(root)
    if len(names) < 2:
        raise DataError(f"{root}: need at least 2 videos to split into train and test, found {len(names)} "
                        "(or use ROOT/train and ROOT/test)")
    n_test = math.ceil(0.2 * len(names))  # sklearn ShuffleSplit arithmetic
    perm = np.random.RandomState(split_seed).permutation(len(names))
    chosen = perm[n_test:] if is_train else perm[:n_test]
    return root, sorted(names[i] for i in chosen), f"{root} ({'train' if is_train else 'test'} split)"


def scan_videos(root: str, *, is_train: bool, frame_shape=None, split_seed: int = 0) -> list[VideoEntry]:
    """Usable entries of the train or test split of ``root``, sorted by name.

    Args:
        root: data folder (``train/`` + ``test/`` layout, or flat; see the module docstring).
        is_train: which split.
        frame_shape: ``(h, w)`` or int; needed for frame strips.
        split_seed: seed of the flat 80/20 split.

    Raises:
        DataError: missing folder, a flat folder with fewer than 2 entries, or nothing usable.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataError(f"{root}: data folder not found" if not os.path.exists(root) else f"{root}: is not a folder")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise DataError(f"split_seed: expected an int >= 0, got {split_seed!r}")
    folder, names, label = _split_names(root, is_train=is_train, split_seed=split_seed)
    entries, skipped = _scan(folder, names, _shape(frame_shape), label)
    _warn_skipped(skipped, len(names), label)
    return entries


def common_frame_shape(entries: list[VideoEntry]) -> tuple[int, int]:
    """The most common native ``(h, w)`` of ``entries`` (ties: the first entry's in list order)."""
    counts = Counter((e.height, e.width) for e in entries)
    best = max(counts.values())
    return next((e.height, e.width) for e in entries if counts[(e.height, e.width)] == best)


def read_frames(entry: VideoEntry, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Stream uint8 ``[H, W, 3]`` frames of ``entry``, resized to ``size = (h, w)`` when given.

    Video files and folders go through :class:`~tpsmm.core.media.video.VideoReader` (undecodable frames are
    skipped with a warning); strips are cut into ``entry.width``-wide frames.
    """
    if entry.kind == "strip":
        strip = load_image_uint8(entry.path)
        for t in range(strip.shape[1] // entry.width):
            frame = np.ascontiguousarray(strip[:, t * entry.width:(t + 1) * entry.width])
            yield frame if size is None else resize_uint8(frame, size)
        return
    with VideoReader(entry.path, size=size) as reader:
        yield from reader
