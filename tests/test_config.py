"""Configs: presets, release YAML, validation messages."""
from __future__ import annotations

import pytest

from tpsmm.core.model.config import PRESETS, Config, ConfigError, ModelConfig, get_preset, load_config


def test_presets_differ_as_released():
    assert set(PRESETS) == {"vox-256", "taichi-256", "ted-384", "mgif-256"}
    assert get_preset("ted-384").model.image_size == 384
    assert get_preset("mgif-256").model.bg is False
    assert get_preset("vox-256").train.bg_start == 10
    assert get_preset("taichi-256").train.dropout_maxp == 0.7
    arch = {k: v for k, v in get_preset("vox-256").model.to_dict().items() if k not in ("bg", "image_size")}
    for name in PRESETS:
        other = {k: v for k, v in get_preset(name).model.to_dict().items() if k not in ("bg", "image_size")}
        assert other == arch


def test_release_yaml_matches_preset(parity_dir):
    cfg = load_config(str(parity_dir / "vox-256" / "config.yaml"))
    vox = get_preset("vox-256")
    assert cfg.model == vox.model
    assert cfg.train == vox.train
    assert cfg.train_avd == vox.train_avd
    assert cfg.dataset.id_sampling and cfg.dataset.jitter["hue"] == 0.1


def test_json_round_trip():
    cfg = get_preset("mgif-256")
    assert Config.from_json(cfg.to_json()) == cfg


def test_image_size_not_divisible():
    with pytest.raises(ConfigError, match="image_size 200 cannot be divided.*multiple of 128"):
        ModelConfig(image_size=200)


@pytest.mark.parametrize("scale", [0.3, 0.0, 1.5])
def test_scale_factor_power_of_half(scale):
    with pytest.raises(ConfigError, match="scale_factor must be a power of 1/2"):
        ModelConfig(scale_factor=scale, multi_mask=False)


def test_bad_integer_field():
    with pytest.raises(ConfigError, match="num_tps must be a positive integer"):
        ModelConfig(num_tps=0)


def test_unknown_preset_or_file():
    with pytest.raises(ConfigError, match="neither a preset"):
        load_config("nope-999")
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("vox")


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_params:\n  common_params:\n    num_tps: 10\n    wings: 2\n")
    with pytest.raises(ConfigError, match="unknown key model_params.common_params.wings"):
        load_config(str(bad))
    bad.write_text("model_params: [1, 2\n")
    with pytest.raises(ConfigError, match="cannot read YAML"):
        load_config(str(bad))


def test_image_size_override():
    assert load_config("vox-256", image_size=512).model.image_size == 512
