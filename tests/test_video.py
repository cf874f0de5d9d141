"""Tests for tpsmm.core.media.video / video_writer / image_io. All media are generated tiny in tmp_path."""
from __future__ import annotations

import os
import tracemalloc
import warnings

import av
import numpy as np
import pytest
import torch
from PIL import Image

from tpsmm.core.media.image_io import load_image, save_image
from tpsmm.core.media.video import (
    SUPPORTED_OUTPUTS, VideoError, VideoInfo, VideoReader, VideoWriter, output_kind, probe_video,
)


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


# ---------------------------------------------------------------- reading
def test_probe_and_read_mp4(tmp_path):
    src = make_frames()
    p = make_clip(tmp_path / "a.mp4", src, audio=True)
    info = probe_video(p)
    assert info == VideoInfo(str(p), 64, 64, 10.0, 10, True)
    with VideoReader(p) as r:
        frames = list(r)
    assert len(frames) == 10 and r.skipped == 0
    assert all(f.dtype == np.uint8 and f.shape == (64, 64, 3) for f in frames)
    err = np.abs(np.stack(frames).astype(int) - src.astype(int)).mean()
    assert err < 6, err  # H.264 CRF default: close to the source


def test_resize_max_frames_batches(tmp_path):
    p = make_clip(tmp_path / "a.mp4")
    r = VideoReader(p, size=32, max_frames=7)
    assert r.frame_size == (32, 32) and r.expected_frames == 7
    assert [b.shape for b in r.batches(3)] == [(3, 32, 32, 3), (3, 32, 32, 3), (1, 32, 32, 3)]
    r2 = VideoReader(p, size=(24, 40))
    f = next(iter(r2))
    assert f.shape == (24, 40, 3) and f.dtype == np.uint8
    r2.close()
    with pytest.raises(VideoError, match="closed"):
        iter(r2)
    for bad in (0, (3, 0), (1, 2, 3), 2.5):
        with pytest.raises(ValueError, match="size"):
            VideoReader(p, size=bad)
    with pytest.raises(ValueError, match="max_frames"):
        VideoReader(p, max_frames=0)


@pytest.mark.parametrize("ext,codec", [("webm", "libvpx-vp9"), ("mkv", "libx264"), ("mov", "libx264"),
                                       ("avi", "mpeg4")])
def test_other_containers(tmp_path, ext, codec):
    p = make_clip(tmp_path / f"a.{ext}", make_frames(6), codec=codec)
    frames = list(VideoReader(p))
    assert len(frames) == 6 and frames[0].shape == (64, 64, 3)
    assert probe_video(p).fps == pytest.approx(10.0)


def test_gif_roundtrip_and_loop(tmp_path):
    src = make_frames(8, 33, 47)  # odd sizes are fine for gif
    with VideoWriter(tmp_path / "a.gif", fps=10) as w:
        w.write(src)
    im = Image.open(tmp_path / "a.gif")
    assert im.n_frames == 8 and im.info.get("loop") == 0 and im.size == (47, 33)
    frames = list(VideoReader(tmp_path / "a.gif"))
    assert len(frames) == 8
    assert np.abs(np.stack(frames).astype(int) - src.astype(int)).mean() < 4


def test_rotation_metadata_applied(tmp_path):
    fr = np.zeros((2, 32, 64, 3), np.uint8)
    fr[:, :8, :8] = 255  # white top-left corner
    p = make_clip(tmp_path / "r.mp4", fr, rotation=90)  # 90° counter-clockwise display
    info = probe_video(p)
    assert (info.width, info.height) == (32, 64)
    f = next(iter(VideoReader(p)))
    assert f.shape == (64, 32, 3)
    assert f[-4, 4].min() > 200 and f[4, 4].max() < 60  # top-left moved to bottom-left


def test_image_folder_and_single_image(tmp_path):
    d = tmp_path / "frames.mp4"  # FOMM-style frame folder named like a video
    d.mkdir()
    src = make_frames(3, 20, 30)
    for i, name in enumerate(["1.png", "2.jpg", "10.png"]):  # natural order 1, 2, 10
        Image.fromarray(src[i]).save(d / name, quality=98)
    (d / "notes.txt").write_text("ignored")
    info = probe_video(d)
    assert (info.width, info.height, info.frame_count, info.has_audio) == (30, 20, 3, False)
    frames = list(VideoReader(d))
    assert len(frames) == 3
    for f, s in zip(frames, src):
        assert np.abs(f.astype(int) - s.astype(int)).mean() < 3
    one = list(VideoReader(d / "10.png", size=8))
    assert len(one) == 1 and one[0].shape == (8, 8, 3)


def test_folder_bad_image_skipped_and_mixed_sizes(tmp_path):
    d = tmp_path / "seq"
    d.mkdir()
    Image.fromarray(make_frames(1, 20, 30)[0]).save(d / "00000.png")
    (d / "00001.png").write_bytes(b"not a png")
    Image.fromarray(make_frames(1, 10, 10)[0]).save(d / "00002.png")
    r = VideoReader(d)
    with pytest.warns(RuntimeWarning) as rec:
        frames = list(r)
    assert r.skipped == 1 and len(frames) == 2
    assert all(f.shape == (20, 30, 3) for f in frames)  # second size resized to the first
    assert any("00001.png" in str(w.message) for w in rec) and any("resizing" in str(w.message) for w in rec)


def test_corrupt_frames_mid_stream(tmp_path):
    p = make_clip(tmp_path / "a.mp4", make_frames(30, 64, 64))
    data = bytearray(p.read_bytes())
    start = data.find(b"mdat") + 4  # frame data of the mp4, read from its box header
    size = int.from_bytes(data[start - 8: start - 4], "big") - 8
    mid = start + size // 2
    data[mid: mid + 300] = np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    r = VideoReader(bad)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        frames = list(r)
    # The H.264 decoder rejects the damaged packets; reading goes on past them.
    assert r.skipped > 0 and any("skipped" in str(w.message) for w in rec)
    assert len(frames) + r.skipped == 30 and len(frames) >= 20


def test_bad_inputs(tmp_path):
    with pytest.raises(VideoError, match="missing.mp4: file not found"):
        VideoReader(tmp_path / "missing.mp4")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    with pytest.raises(VideoError, match="text.mp4: not a video file"):
        probe_video(tmp_path / "text.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty.mp4"):
        VideoReader(tmp_path / "empty.mp4")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(VideoError, match="folder has no images"):
        probe_video(tmp_path / "empty_dir")
    c = av.open(str(tmp_path / "tone.wav"), "w")  # audio only
    s = c.add_stream("pcm_s16le", rate=8000, layout="mono")
    af = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
    af.sample_rate, af.pts = 8000, 0
    c.mux(s.encode(af))
    c.mux(s.encode(None))
    c.close()
    with pytest.raises(VideoError, match="tone.wav: has no video stream"):
        probe_video(tmp_path / "tone.wav")


def test_zero_frame_video(tmp_path):
    c = av.open(str(tmp_path / "zero.avi"), "w")  # AVI keeps a video stream with no frames
    s = c.add_stream("mpeg4", rate=10)
    s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    c.start_encoding()
    c.close()
    r = VideoReader(tmp_path / "zero.avi")
    assert r.info.frame_count == 0
    with pytest.raises(VideoError, match="zero.avi: video has no frames"):
        list(r)


def test_reader_streams_without_holding_the_clip(tmp_path):
    n, h, w = 60, 128, 128
    p = make_clip(tmp_path / "long.mp4", make_frames(n, h, w))
    tracemalloc.start()
    count = 0
    for _ in VideoReader(p):
        count += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == n
    assert peak < 0.25 * n * h * w * 3, peak  # whole clip would be ~2.9 MB; a few frames at most


# ---------------------------------------------------------------- writing
def test_output_kind():
    assert output_kind("x.MP4") == "mp4" and output_kind("a/b.webm") == "webm" and output_kind("c.gif") == "gif"
    assert output_kind("out/frames") == "png-folder" and output_kind("out/frames.v2/") == "png-folder"
    assert set(SUPPORTED_OUTPUTS) == {"mp4", "webm", "gif", "png-folder", "null"} and output_kind(os.devnull) == "null"
    with pytest.raises(VideoError, match=r"x\.avi: unsupported output extension '\.avi'.*\.mp4, \.webm, \.gif"):
        output_kind("x.avi")


def test_mp4_write_read_roundtrip_mixed_inputs(tmp_path):
    src = make_frames(10)
    out = tmp_path / "sub" / "o.mp4"  # parent created
    with VideoWriter(out, fps=12.5) as w:
        w.write(src[:4])                                   # uint8 [T,H,W,3]
        w.write(src[4])                                    # uint8 [H,W,3]
        w.write(torch.from_numpy(src[5:]).float() / 255)  # float torch [T,H,W,3]
    assert w.frames_written == 10
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count, info.fps) == (64, 64, 10, 12.5)
    got = np.stack(list(VideoReader(out)))
    assert np.abs(got.astype(int) - src.astype(int)).mean() < 4  # crf 18
    assert sorted(os.listdir(out.parent)) == ["o.mp4"]  # no temporaries left


def test_odd_sizes(tmp_path):
    src = make_frames(4, 33, 47)
    with VideoWriter(tmp_path / "o.mp4", fps=10) as w:
        w.write(src)
    got = np.stack(list(VideoReader(tmp_path / "o.mp4")))
    assert got.shape == (4, 34, 48, 3)  # padded by edge to even
    assert np.abs(got[:, :33, :47].astype(int) - src.astype(int)).mean() < 5
    assert np.abs(got[:, 33, :47].astype(int) - src[:, 32].astype(int)).mean() < 8  # edge-replicated row
    with VideoWriter(tmp_path / "o.webm", fps=10) as w:
        w.write(src)
    got = np.stack(list(VideoReader(tmp_path / "o.webm")))
    assert got.shape == (4, 33, 47, 3)  # VP9 keeps odd sizes
    assert np.abs(got.astype(int) - src.astype(int)).mean() < 6


def test_png_folder_output(tmp_path):
    src = make_frames(3, 16, 16)
    with VideoWriter(str(tmp_path / "seq") + "/", fps=5) as w:
        w.write(src.astype(np.float32) / 255)
    assert sorted(os.listdir(tmp_path / "seq")) == ["00000.png", "00001.png", "00002.png"]
    assert np.array_equal(np.stack(list(VideoReader(tmp_path / "seq"))), src)  # lossless
    with VideoWriter(tmp_path / "seq", fps=5, overwrite=True) as w:
        w.write(src[:1])
    assert os.listdir(tmp_path / "seq") == ["00000.png"]
    (tmp_path / "seq" / "keep.txt").write_text("user file")
    with pytest.raises(VideoError, match="refusing to replace"):
        VideoWriter(tmp_path / "seq", fps=5, overwrite=True)


def test_overwrite_protection(tmp_path):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"user data")
    with pytest.raises(VideoError, match="o.mp4: already exists"):
        VideoWriter(out, fps=10)
    assert out.read_bytes() == b"user data"
    with VideoWriter(out, fps=10, overwrite=True) as w:
        w.write(make_frames(2))
    assert probe_video(out).frame_count == 2


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_leaves_nothing(tmp_path, exc):
    out = tmp_path / "o.mp4"
    with pytest.raises(type(exc)):
        with VideoWriter(out, fps=10) as w:
            w.write(make_frames(3))
            raise exc
    assert os.listdir(tmp_path) == []
    # an existing file is untouched when a replacing write fails
    out.write_bytes(b"old")
    with pytest.raises(type(exc)):
        with VideoWriter(out, fps=10, overwrite=True) as w:
            w.write(make_frames(3))
            raise exc
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["o.mp4"]


def test_writer_errors(tmp_path):
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "o.mp4", fps=0)
    w = VideoWriter(tmp_path / "o.mp4", fps=10)
    with pytest.raises(VideoError, match="no frames were written"):
        w.close()
    w = VideoWriter(tmp_path / "o.mp4", fps=10)
    w.write(make_frames(1))
    with pytest.raises(VideoError, match="frame 1 is 32x32, but the video is 64x64"):
        w.write(make_frames(1, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        w.write(np.full((64, 64, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="shape"):
        w.write(np.zeros((64, 64), np.uint8))
    w.abort()
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- audio
def test_audio_remux_and_transcode(tmp_path):
    src = make_clip(tmp_path / "src.mp4", make_frames(10), audio=True)
    frames = make_frames(5)  # 0.5 s of video: audio must be cut to it
    with VideoWriter(tmp_path / "o.mp4", fps=10, audio_from=src) as w:
        w.write(frames)
    assert audio_codec(tmp_path / "o.mp4") == "aac"
    with av.open(str(tmp_path / "o.mp4")) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert 0.4 * 16000 < samples < 0.7 * 16000, samples
    with VideoWriter(tmp_path / "o.webm", fps=10, audio_from=src) as w:  # aac → opus
        w.write(frames)
    assert audio_codec(tmp_path / "o.webm") == "opus"
    assert len(list(VideoReader(tmp_path / "o.webm"))) == 5


def test_audio_missing_warns(tmp_path):
    src = make_clip(tmp_path / "silent.mp4", make_frames(3))
    with pytest.warns(RuntimeWarning, match="has no sound"):
        with VideoWriter(tmp_path / "o.mp4", fps=10, audio_from=src) as w:
            w.write(make_frames(3))
    assert audio_codec(tmp_path / "o.mp4") is None and probe_video(tmp_path / "o.mp4").frame_count == 3
    with pytest.warns(RuntimeWarning, match="cannot hold sound"):
        VideoWriter(tmp_path / "o.gif", fps=10, audio_from=src)
    with pytest.raises(VideoError, match="file not found"):
        VideoWriter(tmp_path / "x.mp4", fps=10, audio_from=tmp_path / "nope.mp4")


# ---------------------------------------------------------------- images
def test_load_image_modes(tmp_path):
    rgb = make_frames(1, 9, 7)[0]
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    a = load_image(tmp_path / "rgb.png")
    assert a.dtype == np.float32 and a.shape == (9, 7, 3) and np.allclose(a * 255, rgb)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.shape == (9, 7, 3) and np.allclose(g[..., 0], g[..., 2]) and np.allclose(g[..., 0] * 255, rgb[..., 0])
    rgba = np.concatenate([rgb, np.zeros((9, 7, 1), np.uint8)], -1)  # fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.allclose(load_image(tmp_path / "a.png") * 255, rgb)  # alpha dropped, colours kept
    g16 = np.full((4, 5), 1000, np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    assert np.allclose(load_image(tmp_path / "g16.png"), 1000 / 65535, atol=1e-6)  # 16-bit precision kept
    with pytest.raises(VideoError, match="nope.png: file not found"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "t.png").write_text("text")
    with pytest.raises(VideoError, match="t.png: not a readable image"):
        load_image(tmp_path / "t.png")


def test_save_image(tmp_path):
    img = make_frames(1, 8, 6)[0]
    save_image(tmp_path / "a.png", torch.from_numpy(img).float() / 255)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), img)
    with pytest.raises(VideoError, match="already exists"):
        save_image(tmp_path / "a.png", img)
    save_image(tmp_path / "a.png", img[..., 0], overwrite=True)  # grayscale [H,W]
    assert np.asarray(Image.open(tmp_path / "a.png")).shape == (8, 6, 3)
    save_image(tmp_path / "b.jpg", img)
    assert np.abs(load_image(tmp_path / "b.jpg") * 255 - img).mean() < 12
    with pytest.raises(VideoError, match="unsupported image extension"):
        save_image(tmp_path / "c.xyz", img)
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.jpg"]
