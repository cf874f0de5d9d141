"""Audio for :class:`~tpsmm.core.media.video_writer.VideoWriter`, interleaved with the video as frames are written.

* :class:`AudioCopy` copies a source file's first audio stream: remuxed when its codec fits the container
  (aac/mp3/alac/ac3/eac3 in mp4, opus/vorbis in webm), else transcoded (aac / opus); cut at the video's end.
* :class:`AudioEncode` encodes an :class:`~tpsmm.core.media.audio.AudioTrack` (aac / opus), cut or padded with
  silence to the video's end.

Both have the writer's interface: ``pump(until)`` (mux the audio before ``until`` seconds), ``finish(end)``, ``close()``.
"""
from __future__ import annotations

import warnings
from fractions import Fraction

import av
import numpy as np

from .audio import AudioTrack
from .image_io import VideoError

__all__ = ["AUDIO_CODEC", "AudioCopy", "AudioEncode"]

AUDIO_CODEC = {"mp4": "aac", "webm": "libopus"}
_REMUX_OK = {"mp4": {"aac", "mp3", "alac", "ac3", "eac3"}, "webm": {"opus", "vorbis"}}


class AudioCopy:
    """Copies the first audio stream of ``src`` into ``out``: remux if the codec fits, else transcode."""

    def __init__(self, src: str, out, kind: str):
        try:
            self.inp = av.open(src)
        except av.FFmpegError as exc:
            raise VideoError(f"{src}: cannot read its sound ({exc})") from None
        self.src, self.out, self.stream = src, out, None
        if not self.inp.streams.audio:
            warnings.warn(f"{src}: has no sound; the video is written without sound", RuntimeWarning, stacklevel=4)
            self.inp.close()
            return
        ins = self.inp.streams.audio[0]
        if ins.codec_context.name in _REMUX_OK[kind]:
            self.stream, self.decode = out.add_stream_from_template(ins), False
        else:
            layout = "mono" if ins.codec_context.channels == 1 else "stereo"
            rate = 48000 if kind == "webm" else (ins.codec_context.sample_rate or 48000)
            self.stream, self.decode = out.add_stream(AUDIO_CODEC[kind], rate=rate, layout=layout), True
        self.packets, self.pending = self.inp.demux(ins), None

    def pump(self, until: float) -> None:
        """Mux source audio packets that start before ``until`` seconds."""
        while self.stream is not None:
            if self.pending is None:
                try:
                    self.pending = next(self.packets)
                except StopIteration:
                    self.pending = False
                except av.FFmpegError as exc:
                    warnings.warn(f"{self.src}: audio stopped early ({exc})", RuntimeWarning, stacklevel=4)
                    self.pending = False
            if self.pending is False:
                return
            pkt = self.pending
            if pkt.pts is not None and pkt.time_base is not None and float(pkt.pts * pkt.time_base) >= until:
                return
            self.pending = None
            if pkt.dts is None:  # demuxer flush packet
                continue
            if not self.decode:
                pkt.stream = self.stream
                self.out.mux(pkt)
                continue
            try:
                frames = pkt.decode()
            except av.FFmpegError:
                continue
            for frame in frames:
                frame.pts = None  # the encoder numbers samples itself
                self.out.mux(self.stream.encode(frame))

    def finish(self, end: float) -> None:
        """Copy the audio up to ``end`` seconds (the video's length), flush, close the source."""
        if self.stream is not None:
            self.pump(end)
            if self.decode:
                self.out.mux(self.stream.encode(None))
        self.close()

    def close(self) -> None:
        self.inp.close()


class AudioEncode:
    """Encodes ``track`` into ``out`` (aac in mp4, opus at 48 kHz in webm; more than two channels keep the first two)."""

    CHUNK = 4096

    def __init__(self, track: AudioTrack, out, kind: str):
        self.track, self.out, self.sent = track, out, 0
        self.layout = "mono" if track.channels == 1 else "stereo"
        rate = 48000 if kind == "webm" else track.sample_rate
        self.stream = out.add_stream(AUDIO_CODEC[kind], rate=rate, layout=self.layout)

    def _send(self, samples) -> None:
        """Encode ``samples``, which start at sample ``self.sent`` (pts in samples: the encoder's priming gets a
        negative time stamp and the muxer's edit list hides it, so sample 0 plays with frame 0)."""
        rate = self.track.sample_rate
        for start in range(0, samples.shape[1], self.CHUNK):
            chunk = samples[: 2 if self.layout == "stereo" else 1, start:start + self.CHUNK]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=self.layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, self.sent + start, Fraction(1, rate)
            self.out.mux(self.stream.encode(frame))

    def pump(self, until: float) -> None:
        """Encode the track's samples before ``until`` seconds."""
        n = min(round(until * self.track.sample_rate), self.track.samples.shape[1])
        if n > self.sent:
            self._send(self.track.samples[:, self.sent:n])
            self.sent = n

    def finish(self, end: float) -> None:
        """Encode the rest up to ``end`` seconds, cut or padded with silence, and flush."""
        rest = self.track.fitted(end).samples[:, self.sent:]
        if rest.shape[1]:
            self._send(rest)
            self.sent += rest.shape[1]
        self.out.mux(self.stream.encode(None))

    def close(self) -> None:
        pass
