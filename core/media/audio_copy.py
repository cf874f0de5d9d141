"""Audio for :class:`~tpsmm.core.media.video_writer.VideoWriter`: copy a source file's first audio stream.

The stream is remuxed when its codec fits the container (aac/mp3/alac/ac3/eac3 in mp4, opus/vorbis in
webm), else transcoded (aac / opus), and interleaved with the video as frames are written.
"""
from __future__ import annotations

import warnings

import av

from .image_io import VideoError

__all__ = ["AUDIO_CODEC", "AudioCopy"]

AUDIO_CODEC = {"mp4": "aac", "webm": "libopus"}
_REMUX_OK = {"mp4": {"aac", "mp3", "alac", "ac3", "eac3"}, "webm": {"opus", "vorbis"}}


class AudioCopy:
    """Copies the first audio stream of ``src`` into ``out``: remux if the codec fits, else transcode."""

    def __init__(self, src: str, out, kind: str):
        try:
            self.inp = av.open(src)
        except av.FFmpegError as exc:
            raise VideoError(f"{src}: cannot read audio_from ({exc})") from None
        self.src, self.out, self.stream = src, out, None
        if not self.inp.streams.audio:
            warnings.warn(f"{src}: has no audio stream; writing video without audio", RuntimeWarning, stacklevel=4)
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
