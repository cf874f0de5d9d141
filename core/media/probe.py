"""Probing a video source without decoding it: size, fps, frame count, audio (see :mod:`tpsmm.core.media.video`).

Hostile files are refused here, before any frame is decoded: a FIFO, socket or device (reading would hang), and a
video declaring frames larger than :data:`MAX_VIDEO_PIXELS` (a few bytes can declare 8000x8000 frames).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import av

from .image_io import IMAGE_EXTENSIONS, VideoError, check_input_file, list_image_files, load_image_uint8

__all__ = ["IMAGE_SEQUENCE_FPS", "MAX_VIDEO_PIXELS", "VideoInfo", "open_av", "probe_video", "quarter_turns"]

MAX_VIDEO_PIXELS: int | None = 40_000_000
"""Largest frame (width x height) a video file may declare, like Pillow's ``Image.MAX_IMAGE_PIXELS`` for images:
8K UHD (33 MP) passes, a tiny hostile file declaring 8000x8000 does not (decoding it would take gigabytes).
``None`` lifts the limit; a reader's ``max_pixels`` (``tpsmm animate --max-pixels``) overrides it per source."""

IMAGE_SEQUENCE_FPS = 25.0
"""fps reported for image folders and single images (and for clips whose container gives none)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video source contains, read without decoding the clip.

    Attributes:
        path: the path as given.
        width, height: displayed frame size in pixels (after the rotation of phone videos).
        fps: frames per second (``IMAGE_SEQUENCE_FPS`` for image sources or when unknown).
        frame_count: number of frames if the container says so, else ``0`` (webm/mkv often don't).
        has_audio: the file has at least one audio stream.
    """

    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    has_audio: bool


def open_av(path: str) -> av.container.InputContainer:
    """Open ``path`` with PyAV, check it has a video stream, map errors to :class:`VideoError`."""
    try:
        container = av.open(path)
    except av.error.EOFError:
        raise VideoError(f"{path}: file is empty or truncated") from None
    except av.error.InvalidDataError:
        raise VideoError(f"{path}: not a video file (FFmpeg does not recognise its data)") from None
    except av.FFmpegError as exc:
        raise VideoError(f"{path}: cannot be read ({exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0 and math.isfinite(float(rate)):
            return float(rate)
    return IMAGE_SEQUENCE_FPS


def _first_rotation(container, stream, max_packets: int = 64) -> int:
    """Counter-clockwise display rotation (degrees) of the first decodable frame, 0 if none."""
    try:
        for i, packet in enumerate(container.demux(stream)):
            for frame in packet.decode():
                return int(frame.rotation or 0)
            if i >= max_packets:
                break
    except av.FFmpegError:
        pass
    return 0


def quarter_turns(rotation: float) -> int:
    return int(round(rotation / 90.0)) % 4


def _check_pixels(path: str, w: int, h: int, limit: int | None) -> None:
    if limit is not None and w * h > limit:
        raise VideoError(f"{path}: declares {w}x{h} frames ({w * h:,} pixels), above the limit of {limit:,} "
                         "(raise it with --max-pixels if the file is genuine)")


def probe_video(path: str | os.PathLike, *, max_pixels: int | None | str = "default") -> VideoInfo:
    """Describe any source :class:`VideoReader` accepts (video file, image folder, single image).

    Decodes at most the first frame (to learn the display rotation). Raises :class:`VideoError`
    for a missing path, an empty folder, a file that is not a video/image, a file without a
    video stream, an unreadable file, a FIFO/socket/device, or a video whose declared frame size passes
    ``max_pixels`` (default :data:`MAX_VIDEO_PIXELS`; ``None``: no limit).
    """
    path = os.fspath(path)
    limit = MAX_VIDEO_PIXELS if isinstance(max_pixels, str) else max_pixels
    check_input_file(path, folder_ok=True)
    if os.path.isdir(path):
        files = list_image_files(path)
        if not files:
            raise VideoError(f"{path}: folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
        h, w = load_image_uint8(files[0]).shape[:2]
        return VideoInfo(path, w, h, IMAGE_SEQUENCE_FPS, len(files), False)
    if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS:
        h, w = load_image_uint8(path).shape[:2]
        return VideoInfo(path, w, h, IMAGE_SEQUENCE_FPS, 1, False)
    container = open_av(path)
    try:
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        _check_pixels(path, int(w), int(h), limit)
        fps, count, has_audio = _stream_fps(stream), int(stream.frames or 0), bool(container.streams.audio)
        if quarter_turns(_first_rotation(container, stream)) % 2:
            w, h = h, w
    finally:
        container.close()
    return VideoInfo(path, int(w), int(h), fps, count, has_audio)
