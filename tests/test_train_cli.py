"""Setting up a stage-1 run: ``tpsmm train`` (create, refuse to clobber, resume, the VGG-weights rule), config
overrides (``--set``) and fine-tuning with ``--init-from`` (weights copied, architecture checked, its config)."""
from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model
from test_train import PairDataset, _write_frames, options, read_metrics, tiny_run_config

from tpsmm.core import load_model
from tpsmm.core.model.config import Config
from tpsmm.trainer.loop import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cli_train_and_resume(tmp_path, capsys):
    from tpsmm.__main__ import main

    data = _write_frames(tmp_path / "data")
    run = tmp_path / "run"
    common = ["--no-progress", "--no-tensorboard"]
    args = ["train", "--data", str(data), "--out", str(run), "--image-size", "64", "--batch-size", "2",
            "--num-repeats", "2", "--set", "model.num_tps=2", "--set", "model.dm_num_blocks=3", "--model-size",
            "tiny", "--recon-loss", "l1-ssim", "--steps", "2", "--vis-every", "2", *common]
    assert main(args) == 0
    assert main(args) == 1 and "--resume" in capsys.readouterr().err  # refuses to clobber a run
    assert main(["train", "--resume", str(run), "--steps", "3", *common]) == 0
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3]
    model = load_model(str(run / "model.safetensors"))
    assert (model.config.num_tps, model.config.gen_block_expansion, model.config.image_size) == (2, 16, 64)
    assert (run / "vis" / "00000002.png").is_file() and (run / "loss_curve.png").is_file()
    assert main(["train", "--resume", str(run), "--batch-size", "4", *common]) == 1
    assert "--batch-size cannot be used with --resume" in capsys.readouterr().err


def test_train_refuses_without_vgg_weights(tmp_path, capsys, monkeypatch):
    from tpsmm.__main__ import main

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    code = main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--steps", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "--vgg-weights" in err and "--recon-loss l1-ssim" in err
    assert not (tmp_path / "run").exists()


def test_config_overrides():
    import argparse

    from tpsmm.core.model.config import ConfigError
    from tpsmm.trainer.cli import apply_overrides, build_config

    args = argparse.Namespace(config="taichi-256", model_size="small", set=["model.num_tps=4", "train.bg_start=3",
                                                                           "train.epoch_milestones=[5, 8]"],
                              batch_size=8, num_repeats=None, epochs=2, image_size=128)
    cfg = build_config(args)
    assert (cfg.model.num_tps, cfg.model.gen_block_expansion, cfg.model.backbone, cfg.model.image_size) == (
        4, 32, "small", 128)
    assert (cfg.train.bg_start, cfg.train.epoch_milestones, cfg.train.batch_size, cfg.train.num_epochs) == (
        3, (5, 8), 8, 2)
    assert cfg.train.dropout_maxp == 0.7  # the rest of the preset stays
    for bad, match in (("model.nope=1", "no field 'nope'"), ("modelnum_tps=1", "SECTION.FIELD=VALUE"),
                       ("model.num_tps=0", "num_tps"), ("train.lr_generator=fast", "must be a number"),
                       ("train.num_epochs=[2]", "must be a number")):
        with pytest.raises(ConfigError, match=match):
            apply_overrides(cfg, [bad])
    # YAML 1.1 reads "5e-5" as a string; float fields take it as the number it is
    assert apply_overrides(cfg, ["train.lr_generator=5e-5"]).train.lr_generator == 5e-5


def test_init_from_copies_weights_and_checks_the_architecture(tmp_path, capsys):
    from tpsmm.__main__ import main

    cfg = tiny_run_config(bg_start=0)
    first = Trainer(cfg, PairDataset(4), options(tmp_path / "a", max_steps=2)).run()
    assert first.step == 2
    donor = load_model(str(tmp_path / "a" / "model.safetensors"))
    tuned = Trainer(cfg, PairDataset(4), options(tmp_path / "b", max_steps=1, init_from=str(
        tmp_path / "a" / "model.safetensors"), seed=5))
    for name in ("kp_detector", "dense_motion_network", "inpainting_network", "bg_predictor"):
        ours, theirs = getattr(tuned.model, name).state_dict(), getattr(donor, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), name
    fresh = Trainer(cfg, PairDataset(4), options(tmp_path / "c", max_steps=1, seed=5))
    assert not torch.equal(fresh.model.kp_detector.fg_encoder.fc.bias, donor.kp_detector.fg_encoder.fc.bias)

    official = make_tiny_model(seed=3)  # an official-layout .pth.tar (read with weights_only=True)
    path = tmp_path / "official.pth.tar"
    torch.save({n: getattr(official, n).state_dict() for n in official.present_networks()}, path)
    from_official = Trainer(Config(model=official.config, train=cfg.train), PairDataset(4),
                            options(tmp_path / "f", init_from=str(path)))
    assert torch.equal(from_official.model.dense_motion_network.hourglass.encoder.down_blocks[0].conv.weight,
                       official.dense_motion_network.hourglass.encoder.down_blocks[0].conv.weight)

    wider = Config(model=cfg.model.replace(num_tps=3), train=cfg.train)
    mismatch = r"--init-from: .*model.safetensors: shape mismatch for kp_detector\.fg_encoder\.fc\.weight"
    with pytest.raises(ValueError, match=mismatch):
        Trainer(wider, PairDataset(4), options(tmp_path / "d", init_from=str(tmp_path / "a" / "model.safetensors")))
    data = _write_frames(tmp_path / "data")
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "e"), "--init-from", str(tmp_path / "nope"),
                 "--image-size", "64", "--set", "model.dm_num_blocks=3", "--model-size", "tiny", "--recon-loss",
                 "l1-ssim", "--no-progress", "--no-tensorboard"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "--init-from" in err and "no such file" in err
    assert not (tmp_path / "e" / "run.json").exists()


def test_init_from_supplies_the_config_unless_one_is_given(tmp_path):
    import dataclasses

    from tpsmm.__main__ import build_parser
    from tpsmm.trainer.cli import build_config

    def config_for(*argv):
        return build_config(build_parser().parse_args(["train", "--data", "d", "--out", "o", *argv]))

    cfg = tiny_run_config(bg_start=0)
    cfg = dataclasses.replace(cfg, name="mine", train=dataclasses.replace(cfg.train, epoch_milestones=(3, 5)))
    Trainer(cfg, PairDataset(4), options(tmp_path / "a", max_steps=1)).run()
    ckpt = str(tmp_path / "a" / "model.safetensors")
    # no --config: the checkpoint's architecture and recipe, then --set / flags on top
    tuned = config_for("--init-from", ckpt, "--epochs", "9", "--set", "train.dropout_epoch=0")
    assert tuned.model == cfg.model and tuned.name == "mine"
    assert tuned.train == dataclasses.replace(cfg.train, num_epochs=9, dropout_epoch=0)
    # an explicit --config wins (and the architecture check then reports the mismatch at start)
    assert config_for("--init-from", ckpt, "--config", "vox-256").model.backbone == "resnet18"
    # official layout: the architecture is inferred from the tensor shapes
    official = make_tiny_model(seed=3)
    path = tmp_path / "official.pth.tar"
    torch.save({n: getattr(official, n).state_dict() for n in official.present_networks()}, path)
    inferred = config_for("--init-from", str(path), "--image-size", str(official.config.image_size))
    assert inferred.model == official.config
    with pytest.raises(ValueError, match=r"^--init-from: .*nope: no such file"):
        config_for("--init-from", str(tmp_path / "nope"))
