"""Tests for the procedural articulated-character data set (tpsmm.trainer.synthetic*)."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
from PIL import Image

from tpsmm.trainer.synthetic import dataset as synthetic
from tpsmm.trainer.synthetic.dataset import (DatasetSpec, add_make_dataset_arguments, clip_rng, make_dataset,
                                     make_dataset_command, render_character_clip)
from tpsmm.trainer.synthetic.character import camera_at, pose_at, sample_character


def _clip(seed: int, index: int, frames: int = 24, size: int = 64) -> np.ndarray:
    return render_character_clip(clip_rng(seed, index), frames=frames, size=size)


def test_clip_shape_dtype_and_range():
    clip = render_character_clip(0, frames=3, size=32)
    assert clip.shape == (3, 32, 32, 3) and clip.dtype == np.uint8
    assert clip.std() > 10  # not a blank image: character + background


def test_determinism_and_seed_sensitivity():
    a = render_character_clip(123, frames=4, size=64)
    b = render_character_clip(np.random.Generator(np.random.PCG64(123)), frames=4, size=64)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_clip(5, 2, frames=4), _clip(5, 2, frames=4))
    assert np.abs(_clip(5, 2, frames=4).astype(int) - _clip(5, 3, frames=4)).mean() > 10
    assert np.abs(_clip(5, 2, frames=4).astype(int) - _clip(6, 2, frames=4)).mean() > 10


def test_same_character_at_every_size():
    """Appearance/motion are drawn independently of the output size: 64 px box-downsampled ~= 32 px."""
    big, small = _clip(3, 0, frames=2, size=64), _clip(3, 0, frames=2, size=32)
    down = big.astype(float).reshape(2, 32, 2, 32, 2, 3).mean(axis=(2, 4))
    same = np.abs(down - small).mean()
    other = np.abs(down - _clip(3, 1, frames=2, size=32)).mean()
    assert same < 6 and same * 4 < other


def test_motion_visible_and_smooth():
    for i in range(6):
        clip = _clip(7, i).astype(np.float64)
        first_last = np.abs(clip[-1] - clip[0]).mean()
        consecutive = np.abs(np.diff(clip, axis=0)).mean()
        lag8 = np.abs(clip[8:] - clip[:-8]).mean()
        assert first_last > 2.5, (i, first_last)
        assert 0.3 < consecutive < 0.8 * lag8, (i, consecutive, lag8)


def test_skeleton_moves_tens_of_degrees_and_stays_in_frame():
    for i in range(20):
        ch = sample_character(clip_rng(11, i), 64)
        poses = [pose_at(ch, float(t)) for t in range(32)]
        swing = []
        for limb in range(len(ch.limbs)):
            angles = [math.degrees(math.atan2(*(p.limbs[limb][1] - p.limbs[limb][0]))) for p in poses]
            swing.append(max(angles) - min(angles))
        assert max(swing) > 20, (i, swing)  # at least one limb swings by tens of degrees
        pelvis = np.array([p.pelvis for p in poses])
        assert np.ptp(pelvis, axis=0).max() > 0.01  # the body itself travels / bobs
        cams = np.array([camera_at(ch, float(t)) for t in range(32)])
        assert np.ptp(cams, axis=0).max() > 1e-3  # camera pans / zooms
        for t, p in enumerate(poses):
            sx, sy, zoom = cams[t]
            pts = np.concatenate([np.stack([p.pelvis, p.neck, p.head_centre]), *p.limbs])
            screen = 0.5 + zoom * (pts - 0.5 - np.array([sx, sy]))
            assert screen.min() > 0.02 and screen.max() < 0.98, (i, t)


def test_appearance_constant_within_clip_and_varied_across_clips():
    means, within = [], []
    for i in range(6):
        m = _clip(9, i, frames=12).astype(np.float64).mean(axis=(1, 2))  # (T, 3) mean colour per frame
        within.append(np.abs(m - m.mean(0)).max())
        means.append(m.mean(0))
    across = [np.abs(means[i] - means[j]).max() for i in range(6) for j in range(i)]
    assert max(within) < 4.0 and np.median(across) > 4 * max(within)


@pytest.mark.parametrize("kwargs, message", [
    (dict(size=50), "--size 50: must be a multiple of 32 and at least 32"),
    (dict(size=0), "--size 0: must be a multiple of 32"),
    (dict(frames=1), "--frames 1"),
    (dict(videos=0), "--videos 0"),
    (dict(test_fraction=1.0), "--test-fraction 1.0"),
    (dict(test_fraction=-0.1), "--test-fraction -0.1"),
    (dict(test_fraction=float("nan")), "--test-fraction nan"),
    (dict(seed=-1), "--seed -1"),
    (dict(workers=-1), "--workers -1"),
])
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    args = dict(videos=2, frames=2, size=32) | kwargs
    with pytest.raises(ValueError) as info:
        make_dataset(tmp_path / "out", **args)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="size"):
        render_character_clip(0, frames=2, size=48)
    with pytest.raises(ValueError, match="frames"):
        render_character_clip(0, frames=1, size=32)


def test_split_counts():
    def n_test(videos, fraction):
        return DatasetSpec(videos=videos, frames=2, size=32, test_fraction=fraction).test_videos

    assert n_test(64, 0.2) == 13 and n_test(10, 0.25) == 3  # round half up
    assert n_test(2, 0.01) == 1 and n_test(1, 0.5) == 0 and n_test(10, 0.99) == 9 and n_test(5, 0.0) == 0


def test_layout_contents_and_metadata(tmp_path):
    out = tmp_path / "data"
    summary = make_dataset(out, videos=3, frames=3, size=32, seed=4, test_fraction=0.34)
    assert summary["train"] == 2 and summary["test"] == 1 and summary["out_dir"] == str(out)
    assert sorted(p.name for p in (out / "train").iterdir()) == ["vid0000.mp4", "vid0001.mp4"]
    assert sorted(p.name for p in (out / "test").iterdir()) == ["vid0002.mp4"]
    for split, i in (("train", 0), ("train", 1), ("test", 2)):
        folder = out / split / f"vid{i:04d}.mp4"
        assert folder.is_dir() and sorted(p.name for p in folder.iterdir()) == ["00000.png", "00001.png", "00002.png"]
        frames = np.stack([np.asarray(Image.open(folder / f"{t:05d}.png").convert("RGB")) for t in range(3)])
        np.testing.assert_array_equal(frames, render_character_clip(clip_rng(4, i), frames=3, size=32))
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["spec"] == dict(videos=3, frames=3, size=32, seed=4, test_fraction=0.34)
    assert (meta["train"], meta["test"]) == (2, 1) and meta["names"]["test"] == ["vid0002.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary folders left behind


def test_parallel_workers_give_identical_files(tmp_path):
    make_dataset(tmp_path / "a", videos=3, frames=2, size=32, workers=1)
    make_dataset(tmp_path / "b", videos=3, frames=2, size=32, workers=2)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 7
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_existing_output_rules(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    make_dataset(out, videos=1, frames=2, size=32)  # an existing empty folder is fine
    with pytest.raises(FileExistsError, match="--overwrite"):
        make_dataset(out, videos=2, frames=2, size=32)
    make_dataset(out, videos=2, frames=2, size=32, overwrite=True)
    assert json.loads((out / "dataset.json").read_text())["spec"]["videos"] == 2
    user = tmp_path / "mine"
    user.mkdir()
    (user / "precious.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="dataset.json"):
        make_dataset(user, videos=1, frames=2, size=32, overwrite=True)
    assert (user / "precious.txt").read_text() == "keep"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        make_dataset(tmp_path / "file", videos=1, frames=2, size=32, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "file", "mine"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_leaves_nothing_behind(tmp_path, monkeypatch, error):
    real, calls = synthetic.render_character_clip, []

    def flaky(rng, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise error("simulated failure")
        return real(rng, **kw)

    monkeypatch.setattr(synthetic, "render_character_clip", flaky)
    with pytest.raises(error):
        make_dataset(tmp_path / "data", videos=4, frames=2, size=32, workers=1)
    assert list(tmp_path.iterdir()) == []
    # A failed overwrite keeps the previous data set intact.
    monkeypatch.setattr(synthetic, "render_character_clip", real)
    make_dataset(tmp_path / "data", videos=1, frames=2, size=32)
    before = (tmp_path / "data" / "dataset.json").read_bytes()
    calls.clear()
    monkeypatch.setattr(synthetic, "render_character_clip", flaky)
    with pytest.raises(error):
        make_dataset(tmp_path / "data", videos=4, frames=2, size=32, overwrite=True, workers=1)
    assert (tmp_path / "data" / "dataset.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_cli_command(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="tpsmm make-dataset")
    add_make_dataset_arguments(parser)
    args = parser.parse_args([str(tmp_path / "bad"), "--size", "50", "--quiet"])
    assert make_dataset_command(args) == 2
    err = capsys.readouterr().err
    assert "--size 50: must be a multiple of 32 and at least 32" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    args = parser.parse_args([str(tmp_path / "ok"), "--videos", "2", "--frames", "2", "--size", "32",
                              "--seed", "3", "--test-fraction", "0.5", "--workers", "1"])
    assert make_dataset_command(args) == 0
    assert "1 train + 1 test" in capsys.readouterr().out
    assert (tmp_path / "ok" / "test" / "vid0001.mp4" / "00001.png").is_file()
    assert make_dataset_command(args) == 2  # now exists and is non-empty, no --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_missing_parent_folders_are_created(tmp_path):
    summary = make_dataset(tmp_path / "a" / "b" / "data", videos=1, frames=2, size=32, test_fraction=0.5)
    assert (summary["train"], summary["test"]) == (1, 0)
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["data"]
