"""Checkpoints: safetensors round trip, official conversion, config inference, and every bad file."""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from conftest import make_tiny_model, tiny_model_config
from tpsmm.__main__ import main
from tpsmm.core.model.checkpoint import CheckpointError, convert_official, infer_model_config, read_checkpoint, read_official, save_checkpoint
from tpsmm.core import load_model


def _official(model, path, *, drop=(), extra=None):
    ckpt = {n: getattr(model, n).state_dict() for n in model.present_networks() if n not in drop}
    ckpt["epoch"] = 7
    ckpt["optimizer"] = {"state": {}, "param_groups": [{"lr": 2e-4, "betas": (0.5, 0.999), "params": [0]}]}
    ckpt.update(extra or {})
    torch.save(ckpt, path)
    return str(path)


def _run(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    src, drv = torch.rand(64, 64, 3, generator=g), torch.rand(3, 64, 64, 3, generator=g)
    return model.animate(src, drv, mode="standard")


def test_round_trip(tmp_path):
    model = make_tiny_model()
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, str(path))
    cfg, groups, meta = read_checkpoint(str(path))
    assert cfg.model == model.config
    assert meta["format"] == "tpsmm" and meta["networks"].split(",") == model.present_networks()
    loaded = load_model(str(path))
    assert not loaded.training and all(not p.requires_grad for p in loaded.parameters())
    assert torch.equal(_run(model), _run(loaded))
    assert loaded.model_id == model.model_id


def test_convert_official_and_infer_config(tmp_path):
    model = make_tiny_model()
    src = _official(model, tmp_path / "tiny.pth.tar")
    groups = read_official(src)
    assert set(groups) == set(model.present_networks())
    assert infer_model_config(groups, image_size=64) == model.config
    out = tmp_path / "tiny.safetensors"
    assert main(["convert", src, str(out), "--image-size", "64"]) == 0
    assert torch.equal(_run(load_model(str(out))), _run(model))


def test_without_background_predictor(tmp_path):
    model = make_tiny_model()
    src = _official(model, tmp_path / "mgif.pth.tar", drop=("bg_predictor",))
    conv = convert_official(src, str(tmp_path / "mgif.safetensors"), image_size=64)
    assert conv.bg_predictor is None and conv.config.bg is False
    loaded = load_model(str(tmp_path / "mgif.safetensors"))
    assert "bg_predictor" not in loaded.present_networks()
    assert torch.equal(_run(loaded), _run(model))


def test_without_avd(tmp_path):
    model = make_tiny_model()
    src = _official(model, tmp_path / "noavd.pth.tar", drop=("avd_network",))
    with pytest.warns(UserWarning, match="convert it once with `tpsmm convert"):
        loaded = load_model(src, image_size=64)
    assert loaded.avd_network is None
    from tpsmm.core.model import ModelError
    with pytest.raises(ModelError, match="no AVD network"):
        loaded.animate(torch.rand(64, 64, 3), torch.rand(2, 64, 64, 3), mode="avd")


def test_official_load_warns(tmp_path):
    src = _official(make_tiny_model(), tmp_path / "w.pth.tar")
    with pytest.warns(UserWarning, match="tpsmm convert"):
        load_model(src, image_size=64)


def test_not_safetensors(tmp_path):
    p = tmp_path / "x.safetensors"
    p.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="x.safetensors: not a readable safetensors file"):
        load_model(str(p))


def test_truncated_safetensors(tmp_path):
    p = tmp_path / "t.safetensors"
    save_checkpoint(make_tiny_model(), str(p))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(str(p))


def test_safetensors_without_metadata(tmp_path):
    p = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(2)}, str(p))
    with pytest.raises(CheckpointError, match="without tpsmm metadata"):
        load_model(str(p))


def test_missing_file():
    with pytest.raises(CheckpointError, match="no such file"):
        load_model("/nonexistent/model.safetensors")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('TPSMM_EVIL_MARK', '/tmp/tpsmm-evil-mark')}",))


def test_pickled_code_is_refused(tmp_path, monkeypatch):
    mark = tmp_path / "pwned"
    monkeypatch.setenv("TPSMM_EVIL_MARK", str(mark))
    model = make_tiny_model()
    src = _official(model, tmp_path / "evil.pth.tar", extra={"payload": _Evil()})
    with pytest.raises(CheckpointError, match="refused to load"):
        read_official(src)
    assert not mark.exists()


def test_missing_networks(tmp_path):
    src = _official(make_tiny_model(), tmp_path / "partial.pth.tar", drop=("inpainting_network",))
    with pytest.raises(CheckpointError, match="missing network.*inpainting_network"):
        read_official(src)


def test_shape_mismatch_names_key_and_shapes(tmp_path):
    src = _official(make_tiny_model(), tmp_path / "tiny.pth.tar")
    with pytest.raises(CheckpointError, match=r"shape mismatch for kp_detector.fg_encoder.fc.weight: checkpoint has "
                                              r"\(20, 512\), the config expects \(100, 512\)"):
        convert_official(src, str(tmp_path / "o.safetensors"), config="vox-256")
    assert not (tmp_path / "o.safetensors").exists()


def test_convert_refuses_overwrite(tmp_path, capsys):
    src = _official(make_tiny_model(), tmp_path / "tiny.pth.tar")
    out = tmp_path / "o.safetensors"
    out.write_text("keep me")
    assert main(["convert", src, str(out)]) == 1
    assert "already exists (pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main(["convert", src, src]) == 1


def test_info_cli(tmp_path, capsys):
    p = tmp_path / "m.safetensors"
    save_checkpoint(make_tiny_model(), str(p))
    assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    assert "num_tps: 2" in out and "kp_detector:" in out and "avd_network:" in out and "total:" in out


def test_info_cli_bad_file(tmp_path, capsys):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(b"\x00" * 3)
    assert main(["info", str(p)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tpsmm info: error:") and "bad.safetensors" in err and "\n" not in err


def test_config_mismatch_between_config_and_checkpoint(tmp_path):
    model = make_tiny_model()
    src = _official(model, tmp_path / "m.pth.tar")
    other = tiny_model_config(num_tps=3)
    from tpsmm.core.model.config import Config
    with pytest.raises(CheckpointError, match="shape mismatch"):
        convert_official(src, str(tmp_path / "o.safetensors"), config=Config(model=other))


def test_small_backbone_round_trip_and_inference(tmp_path):
    model = make_tiny_model(backbone="small", backbone_width=8)
    src = _official(model, tmp_path / "small.pth.tar")
    assert infer_model_config(read_official(src), image_size=64) == model.config
    out = tmp_path / "small.safetensors"
    save_checkpoint(model, str(out))
    assert torch.equal(_run(load_model(str(out))), _run(model))


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Checkpoints are readable by others under a 022 umask (not mkstemp's or safetensors' private 0o600)."""
    old = os.umask(0o022)
    try:
        path = tmp_path / "m.safetensors"
        save_checkpoint(make_tiny_model(), str(path))
        assert path.stat().st_mode & 0o777 == 0o644
        assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp files left
    finally:
        os.umask(old)
