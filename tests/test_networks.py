"""Shapes of every network at several batch sizes; the release's architectures (vox, ted-384, mgif)."""
from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_model, tiny_model_config
from tpsmm.core.model.checkpoint import infer_model_config, save_checkpoint
from tpsmm.core import load_model
from tpsmm.core.model.config import ConfigError, get_preset
from tpsmm.core.animation.engine import AnimationEngine
from tpsmm.core import TPSMM
from tpsmm.core.networks.dense_motion import dropout_softmax


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_tiny_shapes(batch):
    model = make_tiny_model()
    cfg = model.config
    s, k = cfg.image_size, cfg.num_tps
    src = torch.rand(batch, 3, s, s)
    drv = torch.rand(batch, 3, s, s)
    with torch.no_grad():
        kp_s, kp_d = model.detect(src), model.detect(drv)
        assert kp_s.shape == (batch, 5 * k, 2) and kp_s.abs().max() < 1
        bg = model.bg_predictor(src, drv)
        assert bg.shape == (batch, 3, 3) and torch.equal(bg[:, 2], torch.tensor([[0.0, 0, 1]]).expand(batch, 3))
        dm = model.dense_motion_network(src, kp_d, kp_s, bg_param=bg)
        h = s // 4
        assert dm.deformation.shape == (batch, h, h, 2)
        assert dm.contribution_maps.shape == (batch, k + 1, h, h)
        assert torch.allclose(dm.contribution_maps.sum(1), torch.ones(batch, h, h), atol=1e-5)
        assert dm.deformed_source.shape == (batch, k + 1, 3, h, h)
        assert [o.shape[-1] for o in dm.occlusion] == [s // 8, s // 4, s // 2, s]
        gen = model.inpainting_network(src, dm, with_warped_maps=True)
        assert gen.prediction.shape == (batch, 3, s, s)
        assert 0 <= gen.prediction.min() and gen.prediction.max() <= 1
        assert [m.shape[-1] for m in gen.warped_encoder_maps] == [s // 8, s // 4, s // 2, s]
        enc = model.inpainting_network.get_encode(drv, dm.occlusion)
        assert [m.shape[-1] for m in enc] == [s, s // 2, s // 4, s // 8]
        avd = model.avd_network(kp_s, kp_d) if batch > 1 else model.avd_network.eval()(kp_s, kp_d)
        assert avd.shape == (batch, 5 * k, 2)


def test_source_broadcast_equals_repeat():
    model = make_tiny_model()
    src = torch.rand(1, 3, 64, 64)
    kp_d = model.detect(torch.rand(3, 3, 64, 64))
    kp_s = model.detect(src).expand(3, -1, -1)
    with torch.no_grad():
        a = model.inpainting_network(src, model.dense_motion_network(src, kp_d, kp_s)).prediction
        rep = src.expand(3, -1, -1, -1).contiguous()
        b = model.inpainting_network(rep, model.dense_motion_network(rep, kp_d, kp_s)).prediction
    assert torch.allclose(a, b, atol=1e-6)


def test_release_architecture_key_counts():
    """Same key sets and parameter counts as the reference listing (§5-10 of the spec)."""
    model = TPSMM(get_preset("vox-256").model)
    counts = {n: sum(p.numel() for p in getattr(model, n).parameters()) for n in model.present_networks()}
    assert counts == {"kp_detector": 11227812, "dense_motion_network": 37941397, "inpainting_network": 24737283,
                      "bg_predictor": 11188998, "avd_network": 2583652}
    assert len(model.dense_motion_network.state_dict()) == 59
    assert len(model.inpainting_network.state_dict()) == 78


def test_mgif_has_no_background_predictor():
    model = TPSMM(get_preset("mgif-256").model)
    assert model.bg_predictor is None
    assert "bg_predictor" not in model.present_networks()


def test_384_input_shapes():
    """ted-384 sizes: 96x96 motion, occlusion masks at 48..384 (tiny widths keep it fast)."""
    model = make_tiny_model(image_size=384, dm_num_blocks=5)
    src = torch.rand(1, 3, 384, 384)
    with torch.no_grad():
        kp = model.detect(src)
        dm = model.dense_motion_network(src, kp, kp)
        assert dm.deformation.shape == (1, 96, 96, 2)
        assert [o.shape[-1] for o in dm.occlusion] == [48, 96, 192, 384]
        assert model.inpainting_network(src, dm).prediction.shape == (1, 3, 384, 384)


def test_dropout_softmax_keeps_background_and_drops():
    logits = torch.randn(4, 6, 5, 5)
    logits[:, 0] += 5   # background dominant, so the +1e-6 in the partition is negligible
    out = dropout_softmax(logits, 0.999, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 0], torch.ones(4, 5, 5), atol=1e-4)   # only background survives
    kept = dropout_softmax(logits, 0.0)
    assert torch.allclose(kept, torch.softmax(logits, 1), atol=1e-5)


def test_single_mask_variant_runs():
    cfg = tiny_model_config(multi_mask=False)
    torch.manual_seed(0)
    model = TPSMM(cfg).eval()
    src = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        kp = model.detect(src)
        dm = model.dense_motion_network(src, kp, kp)
        assert len(dm.occlusion) == 1
        assert model.inpainting_network(src, dm).prediction.shape == (2, 3, 64, 64)


@pytest.mark.parametrize("scale, blocks", [(0.5, 3), (1.0, 4)])
def test_finer_motion_grids_keep_four_masks(scale, blocks, tmp_path):
    """scale_factor 1/2 or 1 (motion estimated at half or full resolution, used by the 64x64 demo model): the four
    occlusion masks still sit at 1/8..1/1 of the frame, the engine matches the networks' own forward, and the
    architecture is recovered from the tensors alone."""
    cfg = tiny_model_config(scale_factor=scale, dm_num_blocks=blocks)
    torch.manual_seed(0)
    model = TPSMM(cfg).eval()
    s, h = cfg.image_size, int(cfg.image_size * scale)
    src, drv = torch.rand(1, 3, s, s), torch.rand(3, 3, s, s)
    with torch.no_grad():
        kp_s, kp_d = model.detect(src), model.detect(drv)
        gen, dm = model.generate_frames(src, kp_s.expand(3, -1, -1), kp_d)
        assert dm.deformation.shape == (3, h, h, 2)
        assert [o.shape[-1] for o in dm.occlusion] == [s // 8, s // 4, s // 2, s]
        engine = AnimationEngine(model, batch_size=3)
        frames = engine.render_batch(engine.cache_source(src), kp_s, kp_d)[0].prediction
    assert (frames - gen.prediction).abs().max() <= 1e-4
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, str(path))
    assert load_model(str(path)).config == cfg
    groups = {name: dict(getattr(model, name).state_dict()) for name in model.present_networks()}
    assert infer_model_config(groups, image_size=s) == cfg


def test_multi_mask_needs_enough_hourglass_levels():
    with pytest.raises(ConfigError, match="scale_factor=1.0 needs dm_num_blocks >= 4, got 3"):
        tiny_model_config(scale_factor=1.0, dm_num_blocks=3)
    with pytest.raises(ConfigError, match="needs scale_factor >= 0.125"):
        tiny_model_config(scale_factor=0.0625, dm_num_blocks=5, image_size=512)
