"""Stage 2 (AVD): random keypoint scaling, frozen eval-mode networks, L1 loss falls, the CLI writes a model
with the AVD network."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_model_config
from test_train import PairDataset, _write_frames
from tpsmm.core.model.checkpoint import save_checkpoint
from tpsmm.core import load_model
from tpsmm.core.model.config import AVDTrainConfig, Config
from tpsmm.core import TPSMM
from tpsmm.trainer.avd_train import AVDTrainer, random_scale


pytestmark = pytest.mark.usefixtures("one_thread")


def test_random_scale_per_sample_and_axis():
    kp = torch.rand(512, 50, 2) * 2 - 1
    out = random_scale(kp, 0.25, torch.Generator().manual_seed(0))
    factors = out / kp
    assert torch.allclose(factors, factors[:, :1, :].expand_as(factors), atol=1e-5)  # one factor per sample/axis
    f = factors[:, 0, :]
    assert f.min() >= 0.75 - 1e-6 and f.max() <= 1.25 + 1e-6 and f.std() > 0.1
    assert abs(torch.corrcoef(f.T)[0, 1]) < 0.15  # x and y drawn independently


def _stage1_checkpoint(path) -> str:
    torch.manual_seed(0)
    model = TPSMM(tiny_model_config(backbone="small"), with_avd=False)
    next(m for m in model.kp_detector.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_mean.fill_(0.1)  # non-default stats must survive stage 2
    save_checkpoint(model, str(path), config=Config(model=model.config))
    return str(path)


def test_avd_training_freezes_other_networks(tmp_path):
    ckpt = _stage1_checkpoint(tmp_path / "stage1.safetensors")
    before = load_file(ckpt)
    model = load_model(ckpt)
    assert model.avd_network is None
    config = Config(model=model.config, train_avd=AVDTrainConfig(batch_size=8, num_epochs=50))
    trainer = AVDTrainer(model, config, PairDataset(16), out_dir=str(tmp_path / "avd"), max_steps=30, vis_every=30,
                         progress=False)
    assert trainer.run() == "finished"
    after = load_file(str(tmp_path / "avd" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)  # frozen, BN statistics included (eval mode)
    assert any(k.startswith("avd_network.") for k in after)
    losses = [json.loads(line)["loss"] for line in open(tmp_path / "avd" / "metrics.jsonl")]
    assert len(losses) == 30 and sum(losses[-5:]) < 0.5 * sum(losses[:5]), losses
    assert (tmp_path / "avd" / "vis" / "00000030.png").is_file()
    trained = load_model(str(tmp_path / "avd" / "model.safetensors"))
    src = trained.extract_keypoints(torch.rand(1, 64, 64, 3))
    drv = trained.extract_keypoints(torch.rand(3, 64, 64, 3))
    assert trained.estimate_motion(src, drv, mode="avd").kp_driving.shape == (3, 10, 2)


def test_cli_train_avd(tmp_path, capsys):
    from tpsmm.__main__ import main

    ckpt = _stage1_checkpoint(tmp_path / "stage1.safetensors")
    data = _write_frames(tmp_path / "data")
    args = ["train-avd", "--checkpoint", ckpt, "--data", str(data), "--out", str(tmp_path / "avd"), "--steps", "2",
            "--batch-size", "4", "--num-repeats", "4", "--no-progress"]
    assert main(args) == 0
    model = load_model(str(tmp_path / "avd" / "model.safetensors"))
    assert model.avd_network is not None and model.config == load_model(ckpt).config
    assert main(args) == 1 and "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
