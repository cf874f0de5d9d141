"""Tests for tpsmm.trainer.augment: flips, resize/crop, colour jitter, determinism and config checks."""
from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from tpsmm.core.model.config import DatasetConfig, get_preset
from tpsmm.trainer.augment import AugmentConfig, augment_clip


def clip(t: int = 2, h: int = 16, w: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.rand(t, 3, h, w, generator=torch.Generator().manual_seed(seed))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def outcome(out: torch.Tensor, x: torch.Tensor) -> str:
    for name, y in (("same", x), ("time", x.flip(0)), ("hflip", x.flip(-1)), ("both", x.flip(0).flip(-1))):
        if torch.equal(out, y):
            return name
    return "other"


def test_flips_are_exclusive_with_release_probabilities():
    x = clip()
    counts = {"same": 0, "time": 0, "hflip": 0, "both": 0, "other": 0}
    cfg = AugmentConfig(horizontal_flip=True, time_flip=True)
    for s in range(400):
        counts[outcome(augment_clip(x, cfg, gen(s)), x)] += 1
    assert counts["both"] == 0 and counts["other"] == 0
    assert 160 < counts["time"] < 240          # p 0.5
    assert 60 < counts["hflip"] < 140          # p 0.25
    assert 60 < counts["same"] < 140


def test_time_flip_swaps_source_and_driving():
    x = clip()
    cfg = AugmentConfig(horizontal_flip=False, time_flip=True)
    outs = [outcome(augment_clip(x, cfg, gen(s)), x) for s in range(40)]
    assert set(outs) == {"same", "time"}
    swapped = augment_clip(x, cfg, gen(outs.index("time")))
    assert torch.equal(swapped[0], x[1]) and torch.equal(swapped[1], x[0])


def test_horizontal_flip_alone_has_probability_half():
    x = clip()
    cfg = AugmentConfig(horizontal_flip=True, time_flip=False)
    outs = [outcome(augment_clip(x, cfg, gen(s)), x) for s in range(400)]
    assert set(outs) == {"same", "hflip"}
    assert 160 < outs.count("hflip") < 240


def test_same_seed_same_clip_and_different_seeds_differ():
    x = clip(h=32, w=32)
    cfg = AugmentConfig(jitter={"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.2},
                        crop_size=24, resize_ratio=(0.8, 1.2))
    a, b = augment_clip(x, cfg, gen(5)), augment_clip(x, cfg, gen(5))
    assert torch.equal(a, b)
    assert a.shape == (2, 3, 24, 24) and a.dtype == torch.float32
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert not torch.equal(a, augment_clip(x, cfg, gen(6)))


def test_no_augmentation_is_identity():
    x = clip()
    out = augment_clip(x, AugmentConfig(horizontal_flip=False, time_flip=False), gen(0))
    assert torch.equal(out, x)


def test_brightness_factor_drawn_once_per_clip_and_in_range():
    x = clip(t=3).mul(0.5)  # no clipping at factor <= 2
    cfg = AugmentConfig(horizontal_flip=False, time_flip=False, jitter={"brightness": 0.4})
    for s in range(10):
        out = augment_clip(x, cfg, gen(s))
        ratio = out / x.clamp_min(1e-3)
        factor = float(ratio[x > 0.05].median())
        assert 0.6 - 1e-4 <= factor <= 1.4 + 1e-4
        torch.testing.assert_close(out, TF.adjust_brightness(x, factor), atol=2e-5, rtol=0)


def test_jitter_order_is_random_but_factors_match_release_ranges():
    x = clip(h=8, w=8)
    cfg = AugmentConfig(horizontal_flip=False, time_flip=False, jitter={"contrast": 0.5, "hue": 0.3})
    outs = {augment_clip(x, cfg, gen(s)).sum().item() for s in range(8)}
    assert len(outs) == 8  # different factors (and orders) per seed
    only_hue = AugmentConfig(horizontal_flip=False, time_flip=False, jitter={"hue": 0.0, "brightness": 0})
    assert torch.equal(augment_clip(x, only_hue, gen(0)), x)


def test_resize_then_crop_pads_with_edges():
    x = clip(t=2, h=32, w=32)
    cfg = AugmentConfig(horizontal_flip=False, time_flip=False, resize_ratio=(0.5, 0.5), crop_size=32)
    out = augment_clip(x, cfg, gen(0))
    assert out.shape == (2, 3, 32, 32)
    inner = out[..., 8:24, 8:24]
    # edge padding: the 8-pixel border repeats the outermost rows/columns of the 16x16 shrunk frame
    assert torch.equal(out[..., :8, 8:24], inner[..., :1, :].expand(-1, -1, 8, -1))
    assert torch.equal(out[..., 8:24, 24:], inner[..., :, -1:].expand(-1, -1, -1, 8))


def test_crop_window_is_shared_by_frames_and_random():
    x = clip(t=2, h=40, w=40)
    x[1] = x[0]
    cfg = AugmentConfig(horizontal_flip=False, time_flip=False, crop_size=16)
    windows = set()
    for s in range(6):
        out = augment_clip(x, cfg, gen(s))
        assert out.shape == (2, 3, 16, 16) and torch.equal(out[0], out[1])
        windows.add(out.sum().item())
    assert len(windows) > 1


def test_from_dataset_config_and_presets():
    vox = AugmentConfig.from_dataset_config(DatasetConfig())
    assert vox.horizontal_flip and vox.time_flip and vox.jitter == {"brightness": 0.1, "contrast": 0.1,
                                                                    "saturation": 0.1, "hue": 0.1}
    mgif = AugmentConfig.from_dataset_config(get_preset("mgif-256").dataset)
    assert mgif.crop_size == 256 and mgif.resize_ratio == (0.9, 1.1) and mgif.jitter == {"hue": 0.5}
    out = augment_clip(clip(h=64, w=64), AugmentConfig.from_dataset_config(get_preset("mgif-256").dataset), gen(1))
    assert out.shape == (2, 3, 256, 256)


@pytest.mark.parametrize("kwargs, message", [
    ({"jitter": {"gamma": 0.1}}, "unknown key"),
    ({"jitter": {"hue": 0.7}}, "at most 0.5"),
    ({"jitter": {"brightness": -1}}, ">= 0"),
    ({"crop_size": 0}, "crop_size"),
    ({"resize_ratio": (1.2, 0.9), "crop_size": 8}, "resize_ratio"),
    ({"resize_ratio": (0.9, 1.1)}, "needs crop_size"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig(**kwargs)


def test_bad_frames_are_refused():
    with pytest.raises(ValueError, match=r"frames: expected a \[T,3,H,W\]"):
        augment_clip(torch.rand(3, 8, 8), AugmentConfig(), gen(0))
    with pytest.raises(ValueError, match="float"):
        augment_clip(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), AugmentConfig(), gen(0))
