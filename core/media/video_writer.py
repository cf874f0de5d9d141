"""Streaming video output: encode frames as they come, publish the file only on success.

Output kinds (from the path):

* ``.mp4``  — H.264 (libx264), yuv420p, CRF 18, ``+faststart``. yuv420p needs even sizes, so a
  frame with odd height/width is padded by repeating its last row/column (output 1 px larger).
* ``.webm`` — VP9 (libvpx-vp9), yuv420p, CRF 24 constant quality.
* ``.gif``  — one adaptive 256-colour palette per frame (Pillow median cut, no dithering),
  loops forever; delays are in 1/100 s, so e.g. 30 fps alternates 3/4 cs.
* a path with no extension or ending in ``/`` — a folder of ``00000.png``, ``00001.png`` ...
* ``/dev/null`` — frames are checked and counted, then discarded (nothing is written).

An existing destination is replaced only with ``overwrite`` and only when it is a regular file or a png
folder this tool wrote (numbered ``.png`` files only); a symbolic link, device, FIFO or socket is refused.

Everything goes to a hidden temporary sibling (``.<name>.partial-*``) that :meth:`VideoWriter.close`
renames onto the final path; on any error (``KeyboardInterrupt`` included) inside a ``with`` block
the temporary is deleted and the final path is left untouched.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import warnings
from fractions import Fraction
from typing import Any

import av
import numpy as np
from PIL import Image

from .atomic import UnsafeOutputError, check_replaceable, sibling_temp_path
from .audio_copy import AUDIO_CODEC, AudioCopy
from .image_io import VideoError, to_uint8_frames

__all__ = ["SUPPORTED_OUTPUTS", "output_kind", "owned_png_folder", "VideoWriter"]

SUPPORTED_OUTPUTS: tuple[str, ...] = ("mp4", "webm", "gif", "png-folder", "null")
"""Output kinds, as returned by :func:`output_kind`."""

_EXTENSIONS = {".mp4": "mp4", ".webm": "webm", ".gif": "gif"}
_VIDEO_CODEC = {"mp4": "libx264", "webm": "libvpx-vp9", "gif": "gif"}
_PNG_NAME = re.compile(r"^\d{5,}\.png$")


def output_kind(path: str | os.PathLike) -> str:
    """``"mp4" | "webm" | "gif" | "png-folder" | "null"`` from the path; :class:`VideoError` for other extensions.

    ``"null"`` is exactly :data:`os.devnull` (render, then discard: an ffmpeg habit).
    """
    p = os.fspath(path)
    if p == os.devnull:
        return "null"
    if p.endswith(("/", os.sep)):
        return "png-folder"
    ext = os.path.splitext(p)[1].lower()
    if not ext:
        return "png-folder"
    if ext not in _EXTENSIONS:
        raise VideoError(f"{p}: unsupported output extension '{ext}' (supported: .mp4, .webm, .gif, "
                         "or a folder path with no extension or ending in '/')")
    return _EXTENSIONS[ext]


def owned_png_folder(path: str) -> str | None:
    """``None`` if folder ``path`` holds only numbered ``.png`` files (a png-folder output), else the first other
    name."""
    others = sorted(n for n in os.listdir(path) if not _PNG_NAME.match(n))
    return others[0] if others else None


class VideoWriter:
    """Encode frames to ``path`` as they come (see the module docstring for the kinds).

    Args:
        path: output path; the kind comes from :func:`output_kind`. Missing parent folders are created.
        fps: frames per second (> 0).
        overwrite: replace an existing output. An existing png folder is only replaced if it holds
            nothing but numbered ``.png`` files.
        audio_from: copy the first audio stream of this file (remuxed if the codec fits the
            container — aac/mp3/alac/ac3 in mp4, opus/vorbis in webm — else transcoded to aac /
            opus), cut at the video's end. A file without audio only warns; gif and png folders
            ignore audio with a warning.

    Attributes:
        frames_written: frames accepted by :meth:`write` so far.
    """

    def __init__(self, path: str | os.PathLike, *, fps: float, overwrite: bool = False,
                 audio_from: str | os.PathLike | None = None):
        self.kind = output_kind(path)
        self.path = os.fspath(path).rstrip("/" + os.sep) if self.kind == "png-folder" else os.fspath(path)
        if not isinstance(fps, (int, float, Fraction)) or not math.isfinite(float(fps)) or fps <= 0:
            raise ValueError(f"fps: expected a positive number, got {fps!r}")
        self.fps, self.overwrite = float(fps), bool(overwrite)
        self._rate = Fraction(fps).limit_denominator(1001)
        codec = _VIDEO_CODEC.get(self.kind)
        if codec is not None and codec not in av.codecs_available:
            raise VideoError(f"{self.path}: this PyAV build has no '{codec}' encoder for .{self.kind} output")
        self._check_destination()
        self.audio_from = None if audio_from is None else os.fspath(audio_from)
        if self.audio_from is not None:
            if not os.path.isfile(self.audio_from):
                raise VideoError(f"{self.audio_from}: audio_from file not found")
            if self.kind == "null":
                self.audio_from = None
            elif self.kind not in AUDIO_CODEC:
                warnings.warn(f"{self.path}: {self.kind} output cannot hold audio; writing it without sound",
                              RuntimeWarning, stacklevel=2)
                self.audio_from = None
        self.frames_written = 0
        self._state, self._tmp, self._container, self._stream, self._audio = "new", None, None, None, None
        self._shape: tuple[int, int] | None = None

    def _check_destination(self) -> None:
        p = self.path
        if self.kind == "null" or not os.path.lexists(p):
            return
        try:
            check_replaceable(p)
        except UnsafeOutputError as exc:
            raise VideoError(str(exc)) from None
        if not self.overwrite:
            raise VideoError(f"{p}: already exists (pass overwrite=True to replace it)")
        if self.kind == "png-folder" and os.path.isdir(p):
            stray = owned_png_folder(p)
            if stray is not None:
                raise VideoError(f"{p}: refusing to replace a folder that holds other files ({stray!r})")
        elif os.path.isdir(p):
            raise VideoError(f"{p}: is a folder, not a {self.kind} file")

    # -- writing ----------------------------------------------------------------------------------
    def write(self, frames: Any) -> None:
        """Append uint8 ``[H, W, 3]`` / ``[T, H, W, 3]`` frames, or float numpy/torch in ``[0, 1]``.

        All frames must have the size of the first one.
        """
        if self._state == "done":
            raise VideoError(f"{self.path}: writer is already closed")
        a = to_uint8_frames(frames)
        for frame in a[None] if a.ndim == 3 else a:
            if self._shape is None:
                self._start(frame.shape[:2])
            elif frame.shape[:2] != self._shape:
                raise VideoError(f"{self.path}: frame {self.frames_written} is {frame.shape[1]}x{frame.shape[0]}, "
                                 f"but the video is {self._shape[1]}x{self._shape[0]}")
            self._encode(frame)
            self.frames_written += 1
            if self._audio is not None:
                self._audio.pump(self.frames_written / self.fps)

    def _start(self, shape: tuple[int, int]) -> None:
        self._shape, self._state = shape, "open"
        h, w = shape
        if self.kind == "null":
            return
        if self.kind == "png-folder":
            self._tmp = sibling_temp_path(self.path, directory=True)
            return
        self._tmp = sibling_temp_path(self.path)
        options = {"movflags": "+faststart"} if self.kind == "mp4" else {}
        self._container = av.open(self._tmp, "w", format=self.kind, options=options)
        s = self._stream = self._container.add_stream(_VIDEO_CODEC[self.kind], rate=self._rate)
        if self.kind == "mp4":
            h, w = h + h % 2, w + w % 2
            s.options = {"crf": "18", "preset": "medium"}
        elif self.kind == "webm":
            s.options = {"crf": "24", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
        s.width, s.height, s.pix_fmt = w, h, "pal8" if self.kind == "gif" else "yuv420p"
        if self.audio_from is not None:
            self._audio = AudioCopy(self.audio_from, self._container, self.kind)

    def _encode(self, frame: np.ndarray) -> None:
        i = self.frames_written
        if self.kind == "null":
            return
        if self.kind == "png-folder":
            Image.fromarray(frame).save(os.path.join(self._tmp, f"{i:05d}.png"), compress_level=4)
            return
        if self.kind == "gif":
            q = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            pal = np.zeros((256, 4), np.uint8)
            rgb = np.asarray(q.getpalette()[:768], np.uint8).reshape(-1, 3)
            pal[:, 0], pal[: len(rgb), 1:] = 255, rgb
            vf = av.VideoFrame.from_ndarray((np.asarray(q), pal), format="pal8")
        else:
            h, w = frame.shape[:2]
            if self.kind == "mp4" and (h % 2 or w % 2):
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts = i
        self._container.mux(self._stream.encode(vf))

    # -- finishing --------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush, then rename the temporary output onto ``path``. Idempotent.

        Raises :class:`VideoError` (and removes the temporary) if no frame was written, if the
        destination appeared meanwhile without ``overwrite``, or if encoding fails.
        """
        if self._state == "done":
            return
        if self._state == "new":
            self._state = "done"
            raise VideoError(f"{self.path}: no frames were written")
        try:
            if self._container is not None:
                self._container.mux(self._stream.encode(None))
                if self._audio is not None:
                    self._audio.finish(self.frames_written / self.fps)
                self._container.close()
            self._check_destination()
            self._publish()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, av.FFmpegError):
                raise VideoError(f"{self.path}: encoding failed ({exc})") from None
            raise
        self._state, self._container, self._audio = "done", None, None

    def _publish(self) -> None:
        if self.kind == "null":
            return
        if self.kind != "png-folder" or not os.path.lexists(self.path):
            os.replace(self._tmp, self.path)
            return
        if not os.path.isdir(self.path):  # overwrite a plain file with the folder
            os.remove(self.path)
            os.replace(self._tmp, self.path)
            return
        trash = sibling_temp_path(self.path, directory=True)
        os.replace(self.path, os.path.join(trash, "old"))
        os.replace(self._tmp, self.path)
        shutil.rmtree(trash, ignore_errors=True)

    def abort(self) -> None:
        """Stop without publishing: close encoders and delete the temporary output. Idempotent."""
        for closeable in (self._audio, self._container):
            try:
                if closeable is not None:
                    closeable.close()
            except Exception:
                pass
        if self._tmp is not None and os.path.lexists(self._tmp):
            shutil.rmtree(self._tmp, ignore_errors=True) if os.path.isdir(self._tmp) else os.remove(self._tmp)
        self._state, self._tmp, self._container, self._audio = "done", None, None, None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.abort()
        else:
            self.close()
        return False

    def __del__(self) -> None:
        if getattr(self, "_state", "done") == "open":
            self.abort()

    def __repr__(self) -> str:
        return f"VideoWriter({self.path!r}, kind={self.kind!r}, fps={self.fps}, frames_written={self.frames_written})"
