"""Tiny test clips made with PyAV directly (independent of tpsmm's VideoWriter), for the media tests."""
from __future__ import annotations

import av
import numpy as np


def make_frames(n: int = 10, h: int = 64, w: int = 64) -> np.ndarray:
    """uint8 [n,h,w,3]: smooth per-frame colour plus a moving white square (frame i at (2i, 2i))."""
    f = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        f[i, ..., 0] = 20 * i % 256
        f[i, ..., 2] = np.linspace(0, 200, w, dtype=np.uint8)[None]
        f[i, 2 * i: 2 * i + 12, 2 * i: 2 * i + 12] = 255
    return f


def make_clip(path, frames=None, *, fps=10, codec="libx264", audio=False, rotation=None):
    """Write a clip with PyAV directly (independent of VideoWriter); optional 1 s 440 Hz aac track."""
    frames = make_frames() if frames is None else frames
    c = av.open(str(path), "w")
    s = c.add_stream(codec, rate=fps)
    s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    if rotation is not None:
        s.set_display_rotation(rotation)
    a = c.add_stream("aac", rate=16000, layout="mono") if audio else None
    for i, fr in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(fr, format="rgb24")
        vf.pts = i
        c.mux(s.encode(vf))
    c.mux(s.encode(None))
    if a is not None:
        t = np.arange(16000) / 16000
        af = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                        format="fltp", layout="mono")
        af.sample_rate, af.pts = 16000, 0
        c.mux(a.encode(af))
        c.mux(a.encode(None))
    c.close()
    return path


def audio_codec(path):
    with av.open(str(path)) as c:
        return c.streams.audio[0].codec_context.name if c.streams.audio else None
