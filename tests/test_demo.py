"""`tpsmm demo` end to end on CPU, and its bad input."""
from __future__ import annotations

import os

import numpy as np

from tpsmm.__main__ import main
from tpsmm.core.media.video import VideoReader, probe_video


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "128"]) == 0
    driving_path = os.path.join(os.path.dirname(__file__), "..", "assets", "demo", "driving.mp4")
    driving = probe_video(driving_path)
    expected = {"animation.mp4": (128, 128), "side_by_side.mp4": (128, 384), "keypoints.mp4": (128, 384)}
    for name, (h, w) in expected.items():
        info = probe_video(str(out / name))
        assert (info.height, info.width) == (h, w), name
        assert info.frame_count == driving.frame_count == 48, name
    frames = np.stack(list(VideoReader(str(out / "animation.mp4")))).astype(np.float32)
    # non-trivial motion: the animated frames change over time, more between distant frames
    assert np.abs(frames[-1] - frames[0]).mean() > 0.3
    assert np.abs(frames[1:] - frames[:-1]).mean() < np.abs(frames[24] - frames[0]).mean()
    # ... and they follow the driving clip: how far each frame is from the first one rises and falls with the
    # driving clip's (Pearson r over the 48 frames; 0.92 with the bundled model, undefined for a still result)
    drv = np.stack(list(VideoReader(driving_path, size=128))).astype(np.float32)
    moved, driven = (np.abs(x - x[:1]).mean(axis=(1, 2, 3)) for x in (frames, drv))
    assert np.corrcoef(moved, driven)[0, 1] > 0.6
    # the same call again refuses to overwrite without --overwrite
    assert main(["demo", "--out", str(out), "--size", "128"]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_demo_unwritable_out(tmp_path, capsys):
    """A folder that cannot be created (its parent is a file; chmod would not stop root) is refused."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert main(["demo", "--out", str(blocker / "sub")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tpsmm demo: error: --out") and "cannot write" in err and "\n" not in err


def test_demo_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("mine")
    assert main(["demo", "--out", str(f)]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert f.read_text() == "mine"
