"""The sound of a driving clip as one track of samples: read with PyAV, cut or padded to the rendered frames.

An :class:`AudioTrack` holds float32 samples ``[C, S]`` in ``[-1, 1]`` whose sample 0 plays together with the
first video frame of the clip it came from (an audio stream that starts later than the video gets leading
silence; one that starts earlier loses its head). :meth:`AudioTrack.fitted` cuts or pads it with silence to a
duration, so an animation of ``T`` frames at ``fps`` gets ``round(T / fps * sample_rate)`` samples, in sync to
the sample. :class:`~tpsmm.core.media.video_writer.VideoWriter` encodes a track next to the frames
(``audio=``).
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import av
import numpy as np

__all__ = ["AudioTrack", "read_audio"]


@dataclass(frozen=True)
class AudioTrack:
    """Samples of one sound track.

    Attributes:
        samples: float32 ``[C, S]`` (channels, samples), ``C >= 1``.
        sample_rate: samples per second per channel (> 0).
    """

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        s = self.samples
        if not isinstance(s, np.ndarray) or s.ndim != 2 or s.shape[0] < 1:
            raise ValueError(f"audio: expected samples [channels, samples], got {getattr(s, 'shape', type(s))}")
        if not int(self.sample_rate) > 0:
            raise ValueError(f"audio: sample rate must be positive, got {self.sample_rate!r}")
        object.__setattr__(self, "samples", np.ascontiguousarray(s, dtype=np.float32))
        object.__setattr__(self, "sample_rate", int(self.sample_rate))

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.sample_rate

    def fitted(self, seconds: float) -> "AudioTrack":
        """This track cut, or padded at the end with silence, to ``round(seconds * sample_rate)`` samples."""
        n = max(0, round(float(seconds) * self.sample_rate))
        have = self.samples.shape[1]
        if n <= have:
            return AudioTrack(self.samples[:, :n], self.sample_rate)
        return AudioTrack(np.pad(self.samples, ((0, 0), (0, n - have))), self.sample_rate)


def _start(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def read_audio(source: str | os.PathLike | io.IOBase, *, name: str | None = None) -> AudioTrack | None:
    """The first audio stream of a media file (a path or a binary file object), aligned to its first video frame.

    Returns ``None`` when the file has no audio stream. Audio that cannot be decoded is not an error: a
    ``RuntimeWarning`` names the file, and what decoded before the damage is returned (``None`` if nothing did),
    so the video is still written, with the sound it could read.
    """
    label = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "video")
    if isinstance(source, io.IOBase):
        source.seek(0)
    try:
        container = av.open(source if isinstance(source, io.IOBase) else os.fspath(source))
    except av.FFmpegError as exc:
        warnings.warn(f"{label}: cannot read its sound ({exc}); the video is written without sound", RuntimeWarning,
                      stacklevel=2)
        return None
    chunks, failed = [], None
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        offset = _start(stream) - (_start(container.streams.video[0]) if container.streams.video else 0.0)
        rate = stream.codec_context.sample_rate or stream.sample_rate
        resampler = av.AudioResampler(format="fltp")
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    chunks += [f.to_ndarray() for f in resampler.resample(frame)]
        except (av.FFmpegError, ValueError) as exc:
            failed = exc
    if failed is not None:
        what = "the rest is silent" if chunks else "the video is written without sound"
        warnings.warn(f"{label}: its sound is damaged and stops after {sum(c.shape[1] for c in chunks) / (rate or 1):.2f}"
                      f" s ({failed}); {what}", RuntimeWarning, stacklevel=2)
    if not chunks or not rate:
        return None
    samples = np.concatenate(chunks, axis=1)
    shift = round(offset * rate)
    samples = np.pad(samples, ((0, 0), (shift, 0))) if shift > 0 else samples[:, -shift:]
    return AudioTrack(samples, rate)
