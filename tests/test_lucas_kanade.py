"""Robust Lucas-Kanade background motion (core/geometry/lucas_kanade.py) and the ``bg_motion="lk"`` model option."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_model_config
from tpsmm.core.model.checkpoint import save_checkpoint
from tpsmm.core import load_model
from tpsmm.core.model.config import Config, ConfigError, TrainConfig
from tpsmm.core.geometry.coords import make_coordinate_grid
from tpsmm.core.geometry.lucas_kanade import estimate_global_motion
from tpsmm.core import TPSMM
from tpsmm.core.networks.bg_motion import BGLucasKanade, BGMotionPredictor

SIZE = 64
PIXELS = (SIZE - 1) / 2  # pixels per normalised unit


def texture(seed: int, batch: int = 1, size: int = SIZE) -> torch.Tensor:
    """A smooth random colour texture ``[B,3,size,size]`` in [0, 1] (features of a few pixels)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, size // 4, size // 4, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def affine(zoom=1.0, angle=0.0, tx=0.0, ty=0.0, shear=0.0) -> torch.Tensor:
    """``[3,3]`` matrix; ``tx``/``ty`` in pixels, ``angle`` in degrees."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return torch.tensor([[zoom * c, -zoom * s + shear, tx / PIXELS], [zoom * s, zoom * c, ty / PIXELS], [0, 0, 1.0]])


def warp(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at ``matrix @ (x, y, 1)`` of every output pixel (the driving frame of a camera move)."""
    b, _, h, w = image.shape
    grid = make_coordinate_grid(h, w)
    grid = torch.cat([grid, torch.ones(h, w, 1)], dim=-1)
    coords = torch.einsum("brc,hwc->bhwr", matrix.expand(b, 3, 3)[:, :2], grid)
    return F.grid_sample(image, coords, mode="bilinear", padding_mode="reflection", align_corners=True)


def corner_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """Largest displacement difference at the frame corners, in pixels."""
    corners = torch.tensor([[-1.0, 1, -1, 1], [-1, -1, 1, 1], [1, 1, 1, 1]])
    diff = (estimate @ corners - truth @ corners)[..., :2, :]
    return float(diff.norm(dim=-2).max() * PIXELS)


def test_identical_frames_give_the_identity():
    image = texture(0, batch=3)
    out = estimate_global_motion(image, image)
    assert out.shape == (3, 3, 3) and out.dtype == torch.float32
    assert torch.allclose(out, torch.eye(3).expand(3, 3, 3), atol=1e-5)


@pytest.mark.parametrize("model, truth", [
    ("translation", affine(tx=2.5, ty=-1.5)),
    ("zoom", affine(zoom=1.04, tx=-1.0, ty=2.0)),
    ("similarity", affine(zoom=0.97, angle=2.0, tx=1.5)),
    ("affine", affine(zoom=1.02, shear=0.03, tx=-2.0, ty=1.0)),
])
def test_recovers_a_known_camera_move(model, truth):
    big = texture(1, size=96)
    window = torch.diag(torch.tensor([63 / 95, 63 / 95, 1.0]))  # the centre 64x64 pixels of the 96x96 frame
    source = warp(big, window)  # exactly big[..., 16:80, 16:80]
    driving = warp(big, window @ truth)  # the camera moved: driving(x) = source(truth @ x), no border effects
    estimate = estimate_global_motion(source, driving, model=model)[0]
    assert corner_error(estimate, truth) < 0.1, estimate


def test_a_moving_foreground_does_not_pull_the_estimate():
    camera = affine(zoom=1.03, tx=2.0, ty=-1.0)
    background = texture(2)
    driving = warp(background, camera)
    source = background.clone()
    fg = texture(3, size=32)  # a textured "character" covering 25 % of the frame, moving 6 px its own way
    source[..., 16:48, 12:44] = fg
    driving[..., 16:48, 18:50] = fg
    estimate = estimate_global_motion(source, driving)[0]
    assert corner_error(estimate, camera) < 0.3
    plain = estimate_global_motion(source, driving, robust_scale=1e6)[0]  # least squares: no robust weights
    assert corner_error(plain, camera) > 0.2  # the foreground would bias a plain least-squares fit


def test_flat_frames_stay_at_the_identity():
    flat = torch.full((2, 3, SIZE, SIZE), 0.4)
    out = estimate_global_motion(flat, flat + 0.1)
    assert torch.isfinite(out).all() and torch.allclose(out, torch.eye(3).expand(2, 3, 3), atol=1e-4)


def test_batch_items_are_independent():
    source, driving = texture(4, batch=2), warp(texture(4, batch=2), affine(tx=1.5))
    driving[1] = warp(source[1:], affine(ty=-2.0))[0]
    both = estimate_global_motion(source, driving)
    for i in range(2):
        assert torch.allclose(both[i], estimate_global_motion(source[i:i + 1], driving[i:i + 1])[0], atol=1e-5)


def test_float32_under_autocast_and_without_gradients():
    source = texture(5).requires_grad_(True)
    driving = warp(texture(5), affine(tx=1.0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = estimate_global_motion(source, driving)
    assert out.dtype == torch.float32 and not out.requires_grad
    assert corner_error(out[0], affine(tx=1.0)) < 0.1


@pytest.mark.parametrize("kwargs, match", [
    (dict(model="projective"), "model='projective'"),
    (dict(source=torch.zeros(1, 3, 8, 8), driving=torch.zeros(1, 3, 8, 9)), "same shape"),
    (dict(source=torch.zeros(3, 8, 8), driving=torch.zeros(3, 8, 8)), r"\[B, C, H, W\]"),
    (dict(source=torch.zeros(1, 3, 1, 8), driving=torch.zeros(1, 3, 1, 8)), "too small"),
])
def test_bad_input(kwargs, match):
    args = dict(source=texture(0), driving=texture(0))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        estimate_global_motion(args.pop("source"), args.pop("driving"), **args)


@pytest.mark.parametrize("field, value", [("bg_motion", "flow"), ("bg_lk_model", "homography")])
def test_config_rejects_unknown_background_models(field, value):
    with pytest.raises(ConfigError, match=field):
        tiny_model_config(**{field: value})


def test_lk_model_has_no_background_weights_and_round_trips(tmp_path):
    config = tiny_model_config(bg_motion="lk", bg_lk_model="zoom")
    model = TPSMM(config).eval()
    assert isinstance(model.bg_predictor, BGLucasKanade) and model.bg_predictor.model == "zoom"
    assert not list(model.bg_predictor.parameters())
    path = tmp_path / "lk.safetensors"
    save_checkpoint(model, str(path))
    loaded = load_model(str(path))
    assert loaded.config == config and isinstance(loaded.bg_predictor, BGLucasKanade)
    frames = texture(6, batch=2)
    moved = warp(frames, affine(zoom=1.02, tx=1.0))
    assert torch.equal(loaded.bg_predictor(frames, moved), model.bg_predictor(frames, moved))
    assert isinstance(TPSMM(tiny_model_config()).bg_predictor, BGMotionPredictor)  # the release's default


def test_info_names_the_measured_background(tmp_path, capsys):
    from tpsmm.__main__ import main

    path = tmp_path / "lk.safetensors"
    save_checkpoint(TPSMM(tiny_model_config(bg_motion="lk")), str(path))
    assert main(["info", str(path)]) == 0
    assert "bg_predictor: measured by a Lucas-Kanade similarity fit (no weights)" in capsys.readouterr().out


def test_training_with_lk_background(tmp_path, one_thread):
    from test_train import PairDataset, options, read_metrics
    from tpsmm.trainer.loop import Trainer

    cfg = Config(model=tiny_model_config(backbone="small", bg_motion="lk"),
                 train=TrainConfig(batch_size=2, num_epochs=100, bg_start=0, epoch_milestones=(2,)))
    trainer = Trainer(cfg, PairDataset(4), options(tmp_path / "run", max_steps=3))
    assert trainer.optimizer_bg is None  # nothing to train
    result = trainer.run()
    assert result.status == "finished" and result.step == 3
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 3 and all("bg" not in r["losses"] for r in rows)
    loaded = load_model(str(tmp_path / "run" / "model.safetensors"))
    assert isinstance(loaded.bg_predictor, BGLucasKanade)
