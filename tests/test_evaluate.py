"""Tests for tpsmm.trainer.evaluate: L1 against an independent frame-by-frame computation, baseline, outputs,
keypoint-metric hook and the ``tpsmm eval`` command's errors."""
from __future__ import annotations

import argparse
import json
import os
import re

import av
import numpy as np
import pytest
import torch
from PIL import Image

from tpsmm.core.model.checkpoint import save_checkpoint
from tpsmm.core.media.video import VideoReader
from tpsmm.trainer.data import DataError
from tpsmm.trainer.eval_cli import add_eval_arguments, eval_command
from tpsmm.trainer.evaluate import evaluate_reconstruction, output_stems

from conftest import make_tiny_model

S = 64


def moving(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = (rng.random((S // 8, S // 8, 3)) * 255).astype(np.uint8)
    base = np.asarray(Image.fromarray(base).resize((S, S), Image.Resampling.BILINEAR))
    return np.stack([np.roll(base, 3 * t, axis=1) for t in range(n)])


def write_folder(path, frames) -> None:
    os.makedirs(path)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(path, f"{t:05d}.png"))


def write_mp4(path, frames) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=12)
        s.width, s.height, s.pix_fmt = S, S, "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode(None))


@pytest.fixture
def model():
    m = make_tiny_model(seed=1)
    with torch.no_grad():  # make the background predictor matter (it starts as the identity)
        m.bg_predictor.bg_encoder.fc.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
    return m


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    write_folder(root / "test" / "clip#a.mp4", moving(3, seed=1))
    write_mp4(root / "test" / "b.mp4", moving(4, seed=2))
    (root / "train").mkdir()
    return root


@pytest.fixture
def small(tmp_path):
    """A folder holding one 2-frame video (for tests about files and flags, not numbers)."""
    write_folder(tmp_path / "small" / "v.mp4", moving(2, seed=4))
    return tmp_path / "small"


def reference(model, frames_uint8: np.ndarray, use_bg: bool = True):
    """Frame-by-frame reconstruction as in the release: (per-frame L1, baseline L1, predictions)."""
    x = torch.from_numpy(frames_uint8).permute(0, 3, 1, 2).float() / 255
    src = x[:1]
    l1, base, preds = [], [], []
    with torch.no_grad():
        kp_s = model.kp_detector(src)
        for t in range(len(x)):
            d = x[t:t + 1]
            bg = model.bg_predictor(src, d) if use_bg else None
            pred = model.generate_frames(src, kp_s, model.kp_detector(d), bg_param=bg)[0].prediction
            l1.append(float((pred - d).abs().mean()))
            base.append(float(np.abs(frames_uint8[t].astype(np.float64) - frames_uint8[0]).mean() / 255))
            preds.append(pred[0])
    return l1, base, torch.stack(preds)


def decoded(path) -> np.ndarray:
    return np.stack(list(VideoReader(str(path), size=S)))


def test_l1_matches_frame_by_frame_reference(model, data, tmp_path):
    out = tmp_path / "out"
    report = evaluate_reconstruction(model, str(data), out_dir=str(out), batch_size=2, progress=False)
    assert list(report.per_video) == ["b.mp4", "clip#a.mp4"] and report.frames == 7
    all_l1, all_base = [], []
    for name in report.per_video:
        frames = decoded(data / "test" / name)
        l1, base, preds = reference(model, frames)
        np.testing.assert_allclose(report.per_frame[name], l1, atol=2e-6, rtol=0)
        assert report.per_video[name] == pytest.approx(np.mean(l1), abs=2e-6)
        assert report.baseline_per_video[name] == pytest.approx(np.mean(base), abs=1e-6)
        all_l1 += l1
        all_base += base
        stem = name[:-4]
        pngs = sorted(os.listdir(out / "png" / stem))
        assert pngs == [f"{t:05d}.png" for t in range(len(frames))]
        png = np.stack([np.asarray(Image.open(out / "png" / stem / p)) for p in pngs]).astype(np.float64) / 255
        np.testing.assert_allclose(png, preds.permute(0, 2, 3, 1).numpy(), atol=0.5 / 255 + 1e-4)
        assert len(decoded(out / f"{stem}.mp4")) == len(frames)
    assert report.mean_l1 == pytest.approx(np.mean(all_l1), abs=2e-6)  # frame-weighted, not video-weighted
    assert report.baseline_mean_l1 == pytest.approx(np.mean(all_base), abs=1e-6)
    assert report.use_bg and report.image_size == S
    saved = json.loads((out / "report.json").read_text())
    assert saved["mean_l1"] == pytest.approx(report.mean_l1) and saved["per_frame"] == report.per_frame
    assert not model.training


def test_no_bg_and_static_video(model, tmp_path):
    folder = tmp_path / "static"
    write_folder(folder / "still", np.repeat(moving(1), 4, axis=0))
    report = evaluate_reconstruction(model, str(folder), out_dir=None, batch_size=3, use_bg=False, progress=False)
    l1 = report.per_frame["still"]
    assert report.baseline_mean_l1 == 0.0 and report.frames == 4 and not report.use_bg
    assert max(l1) - min(l1) < 1e-6  # identical frames, identical reconstructions
    ref, _, _ = reference(model, decoded(folder / "still")[:1], use_bg=False)
    assert l1[0] == pytest.approx(ref[0], abs=2e-6)
    with_bg = evaluate_reconstruction(model, str(folder), out_dir=None, progress=False)
    assert with_bg.use_bg and with_bg.per_frame["still"][0] != pytest.approx(l1[0], abs=1e-7)


def test_training_mode_restored_and_outputs_not_overwritten(model, small, tmp_path):
    model.train()
    out = tmp_path / "o"
    evaluate_reconstruction(model, str(small), out_dir=str(out), progress=False, save_videos=False)
    assert model.training and sorted(os.listdir(out)) == ["report.json"]
    with pytest.raises(FileExistsError, match="report.json: already exists"):
        evaluate_reconstruction(model, str(small), out_dir=str(out), progress=False)
    r = evaluate_reconstruction(model, str(small), out_dir=str(out), progress=False, overwrite=True)
    assert sorted(os.listdir(out)) == ["png", "report.json", "v.mp4"] and r.frames == 2
    assert os.listdir(out / "png") == ["v"] and not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_keypoint_metric_hook(model, data):
    def metric(pred, gt):
        assert pred.shape == gt.shape and pred.ndim == 4
        return {"mse": ((pred - gt) ** 2).mean(dim=(1, 2, 3)), "none": [float("nan")] * len(pred)}

    r = evaluate_reconstruction(model, str(data), out_dir=None, batch_size=4, progress=False, keypoint_metric=metric)
    expected = []
    for name in r.per_video:
        _, _, preds = reference(model, decoded(data / "test" / name))
        gt = torch.from_numpy(decoded(data / "test" / name)).permute(0, 3, 1, 2).float() / 255
        expected += ((preds - gt) ** 2).mean(dim=(1, 2, 3)).tolist()
    assert r.metrics["mse"] == pytest.approx(np.mean(expected), rel=1e-4)
    assert np.isnan(r.metrics["none"]) and r.to_dict()["metrics"]["none"] is None


def test_unusable_videos_are_reported(model, tmp_path):
    folder = tmp_path / "v"
    write_folder(folder / "ok", moving(2))
    folder.joinpath("bad.mp4").write_bytes(b"junk")
    with pytest.warns(RuntimeWarning, match="bad.mp4"):
        r = evaluate_reconstruction(model, str(folder), out_dir=None, progress=False)
    assert list(r.per_video) == ["ok"] and r.skipped and r.skipped[0].startswith("bad.mp4 (unreadable")
    os.remove(folder / "bad.mp4")
    for f in os.listdir(folder / "ok"):
        os.remove(folder / "ok" / f)
    with pytest.raises(DataError, match="no usable videos"):
        evaluate_reconstruction(model, str(folder), out_dir=None, progress=False)


def test_output_stems_avoid_collisions():
    from tpsmm.trainer.data import VideoEntry

    e = [VideoEntry("p", n, n, 2) for n in ("a.mp4", "a.gif", "b.mp4", "c", "d.e")]
    assert output_stems(e) == ["a_mp4", "a_gif", "b", "c", "d.e"]


# ---------------------------------------------------------------- CLI
def run_cli(argv):
    parser = argparse.ArgumentParser()
    add_eval_arguments(parser)
    return eval_command(parser.parse_args(argv))


def test_cli_runs_and_writes_report(model, small, tmp_path, capsys):
    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(model, str(ckpt))
    rc = run_cli(["--checkpoint", str(ckpt), "--data", str(small), "--device", "cpu", "--quiet", "--no-bg"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "mean L1" in out and "v.mp4" in out
    report = json.loads((tmp_path / "reconstruction" / "report.json").read_text())
    assert report["frames"] == 2 and report["use_bg"] is False and os.path.isfile(tmp_path / "reconstruction" / "v.mp4")
    assert run_cli(["--checkpoint", str(ckpt), "--data", str(small), "--device", "cpu", "--quiet"]) == 1
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "{tmp}/missing.safetensors", "--data", "{data}"], "--checkpoint .*file not found"),
    (["--checkpoint", "{ckpt}", "--data", "{tmp}/nope"], "--data .*folder not found"),
    (["--checkpoint", "{ckpt}", "--data", "{data}", "--batch", "0"], "--batch 0: must be >= 1"),
    (["--checkpoint", "{ckpt}", "--data", "{data}", "--device", "cuda:7"], "--device cuda:7"),
    (["--checkpoint", "{ckpt}", "--data", "{data}", "--device", "toaster"], "not a device name"),
    (["--checkpoint", "{junk}", "--data", "{data}", "--device", "cpu"], "junk"),
    (["--checkpoint", "{ckpt}", "--data", "{empty}", "--device", "cpu"], "no usable videos"),
])
def test_cli_bad_inputs(args, message, model, data, tmp_path, capsys):
    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(model, str(ckpt))
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    (tmp_path / "empty").mkdir()
    fill = {"tmp": str(tmp_path), "data": str(data), "ckpt": str(ckpt), "junk": str(tmp_path / "junk.safetensors"),
            "empty": str(tmp_path / "empty")}
    rc = run_cli([a.format(**fill) for a in args] + ["--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("tpsmm eval: error:") and "\n" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "o").exists()
