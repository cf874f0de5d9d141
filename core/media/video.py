"""Streaming video input: probe a clip and decode it one frame at a time (PyAV + Pillow).

Frames are uint8 ``[H, W, 3]`` RGB; :meth:`VideoReader.batches` gives ``[T, H, W, 3]`` chunks.
Nothing holds the whole clip: a 10-minute driving video costs one decoded frame of memory.

Sources (decided from the path, not the content):

* a folder → its png/jpg/... images, natural-sorted by name (``f2`` before ``f10``); this also
  covers the FOMM/TPSMM preprocessed data sets whose frame folders are named ``*.mp4``;
* a still image (``.png .jpg .jpeg .bmp .webp .tif .tiff``) → one frame;
* anything else → PyAV (``.mp4 .mov .webm .mkv .avi .gif`` and whatever else FFmpeg reads).
  The display rotation of phone videos is applied (multiples of 90°).

Writing lives in :mod:`tpsmm.core.media.video_writer`; its names are re-exported here.
"""
from __future__ import annotations

import os
import warnings
import weakref
from typing import Iterator

import av
import numpy as np

from .image_io import IMAGE_EXTENSIONS, VideoError, list_image_files, load_image_uint8, resize_uint8
from .size import Size
from .probe import IMAGE_SEQUENCE_FPS, MAX_VIDEO_PIXELS, VideoInfo, open_av, probe_video, quarter_turns
from .video_writer import SUPPORTED_OUTPUTS, VideoWriter, output_kind

__all__ = [
    "VideoError", "VideoInfo", "probe_video", "VideoReader", "VideoWriter", "SUPPORTED_OUTPUTS",
    "output_kind", "IMAGE_SEQUENCE_FPS", "MAX_VIDEO_PIXELS",
]


class VideoReader:
    """Stream the frames of a video file, an image folder or a single image.

    Args:
        path: the source (see module docstring for how its kind is chosen).
        size: resize every frame to ``size`` (square) or ``(h, w)`` with antialiased bilinear;
            ``None`` keeps the source size (frames of another size in a folder or a stream that
            changes size are resized to the first frame's size, with a warning).
        max_frames: stop after this many frames (``None``: all).
        max_pixels: refuse a video file declaring larger frames (default :data:`MAX_VIDEO_PIXELS`, ``None``: any).

    Attributes:
        info: :class:`VideoInfo` of the source (its own size and frame count, not ``size``).
        skipped: frames of the current/last pass that could not be decoded; each is skipped with
            ``warnings.warn`` (for video files: one failed packet = one frame).
        decoded: frames yielded by the current/last pass. A pass over a video file that ends with fewer
            frames than the file declares (a truncated file) warns with both counts.

    Iterating yields uint8 ``[H, W, 3]`` RGB frames; each ``for`` loop starts a fresh pass.
    A pass with no decodable frame raises ``VideoError("<path>: video has no frames")``.
    Use as a context manager (or call :meth:`close`) to release the decoder early.
    """

    def __init__(self, path: str | os.PathLike, *, size: int | tuple[int, int] | None = None,
                 max_frames: int | None = None, max_pixels: int | None | str = "default"):
        self.path = os.fspath(path)
        self._size = None if size is None else Size.of(int(size) if isinstance(size, np.integer) else size)
        if max_frames is not None and (not isinstance(max_frames, (int, np.integer)) or max_frames < 1):
            raise ValueError(f"max_frames: expected a positive int or None, got {max_frames!r}")
        self.max_frames = None if max_frames is None else int(max_frames)
        self.info = probe_video(self.path, max_pixels=max_pixels)
        self.skipped = self.decoded = 0
        self._passes: weakref.WeakSet = weakref.WeakSet()
        self._closed = False

    @property
    def frame_size(self) -> Size:
        """:class:`~tpsmm.core.media.size.Size` ``(height, width)`` of the frames this reader yields."""
        return self._size or Size(self.info.height, self.info.width)

    @property
    def expected_frames(self) -> int:
        """Frames a pass should yield (for progress bars): ``min(frame_count, max_frames)``, 0 if unknown."""
        n = self.info.frame_count
        if self.max_frames is not None:
            n = min(n, self.max_frames) if n else 0
        return n

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._closed:
            raise VideoError(f"{self.path}: reader is closed")
        gen = self._pass()
        self._passes.add(gen)
        return gen

    def batches(self, n: int) -> Iterator[np.ndarray]:
        """Yield uint8 ``[n', H, W, 3]`` chunks with ``n' = n`` except possibly the last."""
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: expected a positive int, got {n!r}")
        chunk: list[np.ndarray] = []
        for frame in self:
            chunk.append(frame)
            if len(chunk) == n:
                yield np.stack(chunk)
                chunk = []
        if chunk:
            yield np.stack(chunk)

    def close(self) -> None:
        """Stop all running passes and release their decoders. Idempotent."""
        self._closed = True
        for gen in list(self._passes):
            gen.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoReader({self.path!r}, frame_size={self.frame_size}, info={self.info})"

    # -- internals --------------------------------------------------------------------------------
    def _skip(self, what: str, exc: Exception) -> None:
        self.skipped += 1
        warnings.warn(f"{self.path}: skipped {what} that failed to decode ({exc})", RuntimeWarning, stacklevel=3)

    def _pass(self) -> Iterator[np.ndarray]:
        self.skipped = 0
        target, warned, n = self.frame_size, False, 0
        source = self._decoded()
        try:
            for frame in source:
                if frame.shape[:2] != target:
                    if self._size is None and not warned:
                        warnings.warn(f"{self.path}: frame {n} is {frame.shape[1]}x{frame.shape[0]}, "
                                      f"resizing to {target[1]}x{target[0]}", RuntimeWarning, stacklevel=2)
                        warned = True
                    frame = resize_uint8(frame, target)
                yield frame
                n += 1
                if self.max_frames is not None and n >= self.max_frames:
                    return
        finally:
            source.close()
            self.decoded = n
        declared = self.info.frame_count
        if 0 < n < declared and not os.path.isdir(self.path) and n != self.max_frames:
            warnings.warn(f"{self.path}: decoded {n} of the {declared} frames the file declares (truncated or "
                          "damaged file?)", RuntimeWarning, stacklevel=2)
        if n == 0:
            extra = f" ({self.skipped} failed to decode)" if self.skipped else ""
            raise VideoError(f"{self.path}: video has no frames{extra}")

    def _decoded(self) -> Iterator[np.ndarray]:
        """Raw uint8 ``[H, W, 3]`` frames at source size (rotation applied)."""
        if os.path.isdir(self.path):
            for file in list_image_files(self.path):
                try:
                    frame = load_image_uint8(file)
                except VideoError as exc:
                    self._skip(f"image {os.path.basename(file)}", exc)
                    continue
                yield frame
            return
        if os.path.splitext(self.path)[1].lower() in IMAGE_EXTENSIONS:
            yield load_image_uint8(self.path)
            return
        container = open_av(self.path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as exc:  # broken container structure: nothing after this is reachable
                    warnings.warn(f"{self.path}: stopped reading early ({exc})", RuntimeWarning, stacklevel=3)
                    break
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    self._skip("a frame", exc)
                    continue
                for frame in frames:
                    rgb = frame.to_ndarray(format="rgb24")
                    turns = quarter_turns(frame.rotation or 0)
                    yield np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
        finally:
            container.close()
