"""Tests for the animation engine (batching, caching, precision), keypoint smoothing and motion transfer."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import make_tiny_model
from tpsmm.core.animation.engine import AnimationEngine, inference_copy
from tpsmm.core.animation.motion import MotionTransfer, relative_keypoints
from tpsmm.core.animation.smoothing import EMAFilter, OneEuroFilter, make_filter


@pytest.fixture(scope="module")
def setup():
    model = make_tiny_model()
    g = torch.Generator().manual_seed(3)
    src = torch.rand(1, 3, 64, 64, generator=g)
    drv = torch.rand(7, 3, 64, 64, generator=g)
    with torch.no_grad():
        kp_src, kp_drv = model.kp_detector(src), model.kp_detector(drv)
        # the frame-by-frame path: the networks' own forward, source re-encoded for every frame
        ref = [model.generate_frames(src, kp_src, kp_drv[i:i + 1]) for i in range(7)]
    pred = torch.cat([r[0].prediction for r in ref])
    deformation = torch.cat([r[1].deformation for r in ref])
    occlusion = torch.cat([r[1].occlusion[-1] for r in ref])
    return model, src, kp_src, kp_drv, pred, deformation, occlusion


def psnr(a, b):
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("channels_last", [False, True])
def test_batch_equals_frame_by_frame_float32(setup, channels_last):
    """One engine batch = the networks' own forward frame by frame (the engine calls those forwards)."""
    model, src, kp_src, kp_drv, pred, deformation, occlusion = setup
    engine = AnimationEngine(model, batch_size=7, channels_last=channels_last)
    gen, motion = engine.render_batch(engine.cache_source(src), kp_src, kp_drv)
    assert gen.prediction.dtype == torch.float32
    assert (gen.prediction - pred).abs().max() <= 1e-4
    assert (motion.deformation - deformation).abs().max() <= 1e-4
    assert (motion.occlusion[-1] - occlusion).abs().max() <= 1e-4
    assert (engine.detect(src) - kp_src).abs().max() <= 1e-5


def test_engine_leaves_the_model_untouched(setup):
    model = setup[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    AnimationEngine(model, dtype=torch.bfloat16, channels_last=True)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) and after[k].dtype == before[k].dtype for k in before)
    conv = model.inpainting_network.final.weight
    assert conv.is_contiguous() and any(isinstance(m, nn.InstanceNorm2d) for m in model.modules())


def test_inference_copy_swaps_instance_norm_exactly():
    block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.InstanceNorm2d(8, affine=True), nn.ReLU())
    with torch.no_grad():
        block[1].weight.uniform_(0.5, 2)
        block[1].bias.uniform_(-1, 1)
    fast = inference_copy(block, dtype=torch.float32, channels_last=True)
    assert isinstance(fast[1], nn.GroupNorm) and isinstance(block[1], nn.InstanceNorm2d)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert (fast(x.contiguous(memory_format=torch.channels_last)) - block(x)).abs().max() < 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_keeps_sensitive_parts_in_float32(setup, dtype):
    model, src, kp_src, kp_drv, pred, deformation, _ = setup
    engine = AnimationEngine(model, batch_size=4, dtype=dtype, channels_last=True)
    cache = engine.cache_source(src)
    assert all(e.dtype == torch.float32 for e in cache.encoded)
    kp = engine.detect(torch.cat([src, src]))
    assert kp.dtype == torch.float32 and (kp - kp_src).abs().max() < 1e-4   # detector stays float32
    gen, motion = engine.render_batch(cache, kp_src, kp_drv[:4])
    assert gen.prediction.dtype == motion.deformation.dtype == motion.occlusion[-1].dtype == torch.float32
    assert (motion.deformation - deformation[:4]).abs().max() < 0.02
    assert psnr(gen.prediction, pred[:4]) > 35


def test_compiled_engine_pads_the_last_batch(setup):
    model, src, kp_src, kp_drv, pred, _, _ = setup
    engine = AnimationEngine(model, batch_size=4, compile="eager")
    cache = engine.cache_source(src)
    gen, motion = engine.render_batch(cache, kp_src, kp_drv[4:])          # 3 frames, padded to 4 inside
    assert gen.prediction.shape[0] == motion.deformation.shape[0] == 3
    assert (gen.prediction - pred[4:]).abs().max() <= 1e-4


def test_engine_rejects_bad_arguments(setup):
    with pytest.raises(ValueError, match="batch_size"):
        AnimationEngine(setup[0], batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        AnimationEngine(setup[0], dtype=torch.int8)


# ---------------------------------------------------------------- smoothing
def _noisy(t=60, n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.linspace(-0.5, 0.5, t)[:, None, None].expand(t, n, 2)
    return base + 0.02 * torch.randn(t, n, 2, generator=g)


@pytest.mark.parametrize("make", [lambda: EMAFilter(alpha=0.3), lambda: OneEuroFilter(fps=25, min_cutoff=1.0)])
def test_filters_are_causal_and_chunking_invariant(make):
    kp = _noisy()
    whole = make()(kp)
    f = make()
    chunks = torch.cat([f(kp[i:i + 7]) for i in range(0, len(kp), 7)])
    assert torch.allclose(whole, chunks, atol=1e-6)
    assert torch.equal(whole[0], kp[0])
    # causal: changing the future does not change the past
    later = kp.clone()
    later[30:] += 1
    assert torch.equal(make()(later)[:30], whole[:30])


def test_filters_remove_jitter():
    g = torch.Generator().manual_seed(1)
    still = 0.1 + 0.02 * torch.randn(100, 10, 2, generator=g)
    for f in (EMAFilter(alpha=0.2), OneEuroFilter(fps=25, min_cutoff=0.5, beta=0.0)):
        out = f(still)
        assert out[20:].std(dim=0).mean() < 0.5 * still[20:].std(dim=0).mean()
    ema = EMAFilter(alpha=0.5)(torch.tensor([[[0.0, 0.0]], [[1.0, 1.0]], [[1.0, 1.0]]]))
    assert torch.allclose(ema[:, 0, 0], torch.tensor([0.0, 0.5, 0.75]))


def test_one_euro_follows_fast_motion_better_than_slow_cutoff():
    ramp = torch.linspace(0, 2, 50)[:, None, None].expand(50, 1, 2).contiguous()   # fast, clean motion
    lag_plain = (ramp - OneEuroFilter(fps=25, min_cutoff=0.5, beta=0.0)(ramp)).abs()[-1].max()
    lag_adapt = (ramp - OneEuroFilter(fps=25, min_cutoff=0.5, beta=5.0)(ramp)).abs()[-1].max()
    assert lag_adapt < 0.5 * lag_plain


def test_make_filter():
    assert make_filter("off", 0.5, fps=25) is None and make_filter("ema", 0.0, fps=25) is None
    assert isinstance(make_filter("ema", 0.25, fps=25), EMAFilter) and make_filter("ema", 0.25, fps=25).alpha == 0.75
    f = make_filter("one-euro", 0.5, fps=30)
    assert isinstance(f, OneEuroFilter) and f.min_cutoff == pytest.approx(1.0)
    with pytest.raises(ValueError, match="^smoothing_strength: "):
        make_filter("ema", 1.0, fps=25)
    with pytest.raises(ValueError, match="^smoothing: "):
        make_filter("kalman", 0.5, fps=25)


# ---------------------------------------------------------------- motion transfer
def test_motion_transfer_streams_like_the_whole_clip(setup):
    model, _, kp_src, kp_drv, *_ = setup
    rel = MotionTransfer(mode="relative", kp_source=kp_src, kp_reference=kp_drv[2:3], strength=1.5)
    chunked = torch.cat([rel(kp_drv[i:i + 3]) for i in range(0, 7, 3)])
    assert torch.allclose(chunked, relative_keypoints(kp_src, kp_drv, kp_drv[2:3], strength=1.5))
    assert torch.allclose(rel(kp_drv[2:3]), kp_src)          # the reference frame maps onto the source pose
    assert torch.equal(MotionTransfer(mode="standard", kp_source=kp_src)(kp_drv), kp_drv)
    avd = MotionTransfer(mode="avd", kp_source=kp_src, avd_network=model.avd_network)
    with torch.no_grad():
        model.avd_network.eval()
        expected = model.avd_network(kp_src.expand(7, -1, -1), kp_drv)
    assert torch.allclose(torch.cat([avd(kp_drv[:4]), avd(kp_drv[4:])]), expected, atol=1e-6)
    with pytest.raises(ValueError, match="no AVD network"):
        MotionTransfer(mode="avd", kp_source=kp_src)
    with pytest.raises(ValueError, match="degenerate"):
        MotionTransfer(mode="relative", kp_source=kp_src, kp_reference=torch.zeros_like(kp_src))
