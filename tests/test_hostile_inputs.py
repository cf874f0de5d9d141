"""Hostile inputs: checkpoints whose config does not fit their tensors (or is absurd), decompression-bomb videos,
truncated videos, FIFOs, bad recipes and API values, bfloat16 in every mode, and SIGTERM in the middle of a render.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import bf16_fallback, make_tiny_model, tiny_model_config
from hostile_util import snapshot
from tpsmm.__main__ import main
from tpsmm.core.media.image_io import VideoError, save_image
from tpsmm.core.media.video import VideoReader, VideoWriter, probe_video
from tpsmm.core import load_model
from tpsmm.core.model.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from tpsmm.core.model.config import ConfigError, ModelConfig, TrainConfig
from tpsmm.core.model.recipe import AVDTrainConfig, DatasetConfig

# a 1x1 GIF whose logical screen declares 8000x8000 (FFmpeg decodes it at that size: ~180 MB a frame)
GIF_BOMB = (b"GIF89a" + (8000).to_bytes(2, "little") * 2 + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
            + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b")


def tampered_checkpoint(tmp_path, **model_changes) -> str:
    """A tiny checkpoint whose stored config is replaced (tensors stay tiny)."""
    src = tmp_path / "tiny.safetensors"
    save_checkpoint(make_tiny_model(), str(src))
    with safe_open(str(src), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    cfg = json.loads(meta["config"])
    cfg["model"].update(model_changes)
    meta["config"] = json.dumps(cfg)
    out = tmp_path / "tampered.safetensors"
    save_file(tensors, str(out), metadata=meta)
    return str(out)


def test_config_bigger_than_its_tensors_is_refused_before_allocating(tmp_path, capsys):
    path = tampered_checkpoint(tmp_path, gen_block_expansion=512, gen_max_features=8192, dm_block_expansion=512,
                               dm_max_features=8192)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=r"tampered\.safetensors: shape mismatch for"):
        read_checkpoint(path)
    assert main(["info", path]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tampered.safetensors" in err[0] and "shape mismatch" in err[0]
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    assert grown_mb < 500, grown_mb  # building that config for real takes gigabytes


@pytest.mark.parametrize("changes, key", [(dict(num_tps=10 ** 6), "num_tps"), (dict(image_size=2 ** 20), "image_size"),
                                          (dict(kp_variance=float("nan")), "kp_variance"),
                                          (dict(image_size=0), "image_size")])
def test_absurd_model_configs_are_refused(changes, key):
    with pytest.raises(ConfigError, match=key):
        tiny_model_config(**changes)


def test_load_model_refuses_image_size_zero(tiny_checkpoint):
    with pytest.raises(ConfigError, match="image_size must be a positive integer, got 0"):
        load_model(tiny_checkpoint, image_size=0)


def test_gif_bomb_is_refused_and_the_limit_can_be_raised(tmp_path):
    bomb = tmp_path / "bomb.gif"
    bomb.write_bytes(GIF_BOMB)
    assert len(GIF_BOMB) < 120
    with pytest.raises(VideoError, match=r"bomb\.gif: declares 8000x8000 frames .*above the limit .*--max-pixels"):
        VideoReader(str(bomb))
    assert probe_video(str(bomb), max_pixels=None).width == 8000  # lifted on request


def test_truncated_video_reports_decoded_vs_declared(tmp_path):
    clip = tmp_path / "clip.mp4"
    with VideoWriter(str(clip), fps=10) as w:
        for i in range(12):
            w.write(np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    reader = VideoReader(str(cut))
    assert reader.info.frame_count == 12
    with pytest.warns(RuntimeWarning, match=r"cut\.mp4: decoded \d+ of the 12 frames the file declares"):
        frames = list(reader)
    assert 0 < len(frames) < 12 and reader.decoded == len(frames)


@pytest.mark.parametrize("kind, values, key", [
    (TrainConfig, dict(num_epochs=-1), "train.num_epochs"),
    (TrainConfig, dict(epoch_milestones=("a",)), "train.epoch_milestones"),
    (TrainConfig, dict(dropout_maxp=1.5), "train.dropout_maxp"),
    (TrainConfig, dict(dropout_startp=-0.1), "train.dropout_startp"),
    (TrainConfig, dict(lr_generator=float("nan")), "train.lr_generator"),
    (TrainConfig, dict(batch_size=0), "train.batch_size"),
    (AVDTrainConfig, dict(num_epochs=-5), "train_avd.num_epochs"),
    (DatasetConfig, dict(frame_shape=(0, 64)), "dataset.frame_shape"),
])
def test_bad_recipes_name_the_key(kind, values, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        kind(**values)


@pytest.mark.parametrize("entry, key", [("train.num_epochs=-1", "train.num_epochs"),
                                        ("train.epoch_milestones=[a, b]", "train.epoch_milestones"),
                                        ("train.dropout_maxp=2", "train.dropout_maxp")])
def test_train_cli_refuses_bad_recipes_in_one_line(tmp_path, capsys, entry, key):
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--recon-loss", "l1-ssim",
                 "--set", entry])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and key in err[0], err
    assert not (tmp_path / "run").exists()


def test_train_cli_refuses_zero_accumulation(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--recon-loss", "l1-ssim",
                 "--accumulate", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--accumulate" in err[0], err


@pytest.mark.parametrize("mode", ["relative", "standard", "avd"])
def test_bfloat16_model_animates_in_every_mode(tiny_checkpoint, mode):
    model = load_model(tiny_checkpoint, dtype=torch.bfloat16)
    rng = np.random.default_rng(0)
    with bf16_fallback():
        out = model.animate(rng.random((64, 64, 3), dtype=np.float32), rng.random((2, 64, 64, 3), dtype=np.float32),
                            mode=mode)
    assert out.shape == (2, 64, 64, 3) and torch.isfinite(out.float()).all()


@pytest.mark.parametrize("ref", [1.5, float("nan"), True])
def test_fractional_reference_frame_is_refused(tiny_checkpoint, ref):
    model = load_model(tiny_checkpoint)
    frames = np.zeros((3, 64, 64, 3), np.float32)
    with pytest.raises(ValueError, match="reference_frame: expected a whole frame index"):
        model.animate(frames[0], frames, reference_frame=ref)


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    save_checkpoint(make_tiny_model(), str(folder / "tiny.safetensors"))
    rng = np.random.default_rng(0)
    save_image(str(folder / "source.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    clip = folder / "drive.mp4"
    with VideoWriter(str(clip), fps=25) as w:
        for i in range(2000):
            w.write(np.full((64, 64, 3), i % 255, np.uint8))
    (tmp_path / "out.mp4").write_bytes(b"the earlier render")
    before = snapshot(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    argv = [sys.executable, "-m", "tpsmm", "animate", "--checkpoint", str(folder / "tiny.safetensors"), "--source",
            str(folder / "source.png"), "--driving", str(clip), "--out", str(tmp_path / "out.mp4"), "--overwrite",
            "--device", "cpu", "--batch", "2", "--quiet"]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(".partial-" in n for n in os.listdir(tmp_path)):
        time.sleep(0.2)  # wait until rendering has started (the temporary output exists)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before  # temp removed, the earlier output untouched


@pytest.mark.parametrize("flag, value", [("--timeout", "-5"), ("--timeout", "0"), ("--start-timeout", "-1"),
                                         ("--timeout", "nan")])
def test_render_refuses_non_positive_or_nan_timeouts(flag, value, tmp_path, capsys):
    from tpsmm.__main__ import main

    wf = tmp_path / "wf.json"
    wf.write_text("{}")
    rc = main(["render", str(wf), "--server", "http://127.0.0.1:9", flag, value, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == (2 if value == "nan" else 1), err          # NaN: a usage error, caught while parsing the flags
    assert err.startswith("tpsmm render: error: ") and flag in err and "\n" not in err, err
    assert not (tmp_path / "out").exists()
