"""Reading media: tpsmm.core.media.video (probe, VideoReader: containers, folders, corrupt frames, streaming) and
image_io.load_image. All media are generated tiny in tmp_path (tests/clips.py)."""
from __future__ import annotations

import tracemalloc
import warnings

import av
import numpy as np
import pytest
from clips import make_clip, make_frames
from PIL import Image

from tpsmm.core.media.image_io import load_image
from tpsmm.core.media.video import VideoError, VideoInfo, VideoReader, VideoWriter, probe_video


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
