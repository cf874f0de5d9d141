"""Writing media: tpsmm.core.media.video_writer (VideoWriter: formats, sizes, overwrite and failure safety, audio)
and image_io.save_image. All media are generated tiny in tmp_path (tests/clips.py)."""
from __future__ import annotations

import os

import av
import numpy as np
import pytest
import torch
from clips import audio_codec, make_clip, make_frames
from PIL import Image

from tpsmm.core.media.image_io import load_image, save_image
from tpsmm.core.media.video import SUPPORTED_OUTPUTS, VideoError, VideoReader, VideoWriter, output_kind, probe_video


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
