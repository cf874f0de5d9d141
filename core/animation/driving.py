"""The driving clip as the pipeline reads it: re-iterable batches of user-layout frames.

A :class:`DrivingFrames` hands out batches ``[b, H, W, 3]`` float32 CPU in ``[0, 1]`` (ComfyUI's IMAGE
layout) as many times as asked: relative motion with a reference frame other than the first reads
the clip twice (keypoints first, then the frames again for the layouts that show them). A video is
decoded batch by batch on every pass, so memory never grows with the clip length.
"""
from __future__ import annotations

import os
from typing import Callable, Iterator

import torch

from ..media.images import InputError
from ..media.size import Size
from ..media.video import VideoReader

__all__ = ["DrivingFrames"]


class DrivingFrames:
    """A re-iterable driving clip.

    Args:
        batches: ``n -> iterator`` of float ``[b, H, W, 3]`` batches (``b = n`` but possibly the last);
            each call starts a fresh pass.
        fps: frame rate (for smoothing and writers).
        frame_count: frames per pass if known (progress bars), else ``None``.
        size: :class:`~tpsmm.core.media.size.Size` ``(height, width)`` of the frames.
        name: what to call the clip in error messages.
        has_audio: whether the clip's file has a sound stream (known for :meth:`from_video`, else ``False``).

    Use the constructors :meth:`from_tensor`, :meth:`from_video` and :meth:`from_batches`.
    """

    def __init__(self, batches: Callable[[int], Iterator[torch.Tensor]], *, fps: float, frame_count: int | None,
                 size: Size | tuple[int, int], name: str = "driving", closer: Callable[[], None] | None = None,
                 has_audio: bool = False) -> None:
        if not fps > 0:
            raise InputError(f"{name}: frame rate must be positive, got {fps!r}")
        self._batches, self.fps, self.frame_count, self.name = batches, float(fps), frame_count, name
        self.size = Size.of(size)
        self._closer, self.has_audio = closer, bool(has_audio)
        self.skipped = 0

    @classmethod
    def from_tensor(cls, frames, *, fps: float = 30.0, name: str = "driving") -> "DrivingFrames":
        """Frames held in memory: ``[T, H, W, C]`` (or one ``[H, W, C]``) float in ``[0, 1]``, tensor or array."""
        if not isinstance(frames, torch.Tensor):
            try:
                frames = torch.as_tensor(frames)
            except (TypeError, ValueError, RuntimeError):
                raise InputError(f"{name}: expected a tensor or array of frames, got {type(frames).__name__}") from None
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4:
            raise InputError(f"{name}: expected [T,H,W,C] frames, got shape {tuple(frames.shape)}")
        if frames.shape[0] == 0:
            raise InputError(f"{name}: the clip has no frames")

        def batches(n: int) -> Iterator[torch.Tensor]:
            for start in range(0, frames.shape[0], n):
                yield frames[start:start + n]
        return cls(batches, fps=fps, frame_count=frames.shape[0], size=Size.of_image(frames), name=name)

    @classmethod
    def from_video(cls, path: str | os.PathLike, *, max_frames: int | None = None,
                   name: str | None = None, max_pixels: int | None | str = "default") -> "DrivingFrames":
        """A video file, image folder or image, streamed with :class:`~tpsmm.core.media.video.VideoReader`
        (``max_pixels``: its decompression-bomb limit, see :data:`~tpsmm.core.media.probe.MAX_VIDEO_PIXELS`)."""
        reader = VideoReader(path, max_frames=max_frames, max_pixels=max_pixels)
        clip: DrivingFrames

        def batches(n: int) -> Iterator[torch.Tensor]:
            try:
                for chunk in reader.batches(n):
                    yield torch.from_numpy(chunk).float().div_(255)
            finally:
                clip.skipped = reader.skipped
        clip = cls(batches, fps=reader.info.fps, frame_count=reader.expected_frames or None, size=reader.frame_size,
                   name=name or os.fspath(path), closer=reader.close, has_audio=reader.info.has_audio)
        return clip

    @classmethod
    def from_batches(cls, batches: Callable[[int], Iterator[torch.Tensor]], *, fps: float, size: Size | tuple[int, int],
                     frame_count: int | None = None, name: str = "driving") -> "DrivingFrames":
        """Any re-startable source of float ``[b, H, W, 3]`` batches (e.g. a ComfyUI VIDEO's stream)."""
        return cls(batches, fps=fps, frame_count=frame_count, size=size, name=name)

    def batches(self, n: int) -> Iterator[torch.Tensor]:
        """A fresh pass over the clip in batches of ``n`` frames; an empty pass is an :class:`InputError`."""
        empty = True
        for batch in self._batches(n):
            empty = False
            yield batch
        if empty:
            raise InputError(f"{self.name}: the clip has no frames")

    def close(self) -> None:
        """Release the decoder (if any). Idempotent."""
        if self._closer is not None:
            self._closer()

    def __enter__(self) -> "DrivingFrames":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DrivingFrames({self.name!r}, {self.size}, fps={self.fps:g}, frames={self.frame_count})"
