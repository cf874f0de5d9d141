"""Nearest x2 upsampling + 3x3 convolution computed on the low-resolution input (core/networks/subpixel.py):
the same function as the original block (exact in float64), gradients, whole networks, and what it refuses."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import make_tiny_model
from tpsmm.core.animation.engine import inference_copy
from tpsmm.core.networks.blocks import UpBlock2d
from tpsmm.core.networks.subpixel import SubpixelUpBlock2d, SubpixelUpConv, phase_kernels, subpixel_upsampling


def reference(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return conv(F.interpolate(x, scale_factor=2))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (8, 8)])
def test_equals_upsample_then_convolve(bias, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 4, 3, padding=1, bias=bias)
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        got, want = SubpixelUpConv(conv)(x), reference(conv, x)
    assert got.shape == want.shape == (2, 4, 2 * size[0], 2 * size[1])
    assert (got - want).abs().max() < 1e-5


def test_is_exact_in_float64():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, 3, padding=1).double()
    x = torch.randn(1, 3, 7, 4, dtype=torch.float64)
    with torch.no_grad():
        assert (SubpixelUpConv(conv)(x) - reference(conv, x)).abs().max() < 1e-12


def test_gradcheck_input():
    torch.manual_seed(2)
    up = SubpixelUpConv(nn.Conv2d(2, 3, 3, padding=1).double())
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(up, (x,))


def test_phase_kernels_sum_to_the_original_taps():
    w = torch.randn(4, 3, 3, 3)
    k = phase_kernels(w).view(4, 2, 2, 3, 2, 2)
    # each phase sees every tap once: its 2x2 kernel sums to the 3x3 kernel's sum
    assert torch.allclose(k.sum(dim=(-1, -2)), w.sum(dim=(-1, -2))[:, None, None, :].expand(4, 2, 2, 3), atol=1e-5)
    assert torch.equal(k[:, 0, 0, :, 0, 0], w[:, :, 0, 0])            # phase (0,0): its top-left tap alone


@pytest.mark.parametrize("conv", [nn.Conv2d(2, 2, 5, padding=2), nn.Conv2d(2, 2, 3, padding=1, stride=2),
                                  nn.Conv2d(2, 2, 3, padding=1, groups=2), nn.Conv2d(2, 2, 3, padding=0),
                                  nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")])
def test_refuses_other_convolutions(conv):
    assert not SubpixelUpConv.applies_to(conv)
    with pytest.raises(ValueError, match="3x3, padding 1"):
        SubpixelUpConv(conv)


def test_phase_kernels_refuses_other_shapes():
    with pytest.raises(ValueError, match=r"\[Cout, Cin, 3, 3\]"):
        phase_kernels(torch.randn(2, 2, 5, 5))


def test_whole_networks_keep_their_outputs():
    model = make_tiny_model()
    for name in ("dense_motion_network", "inpainting_network"):
        net = getattr(model, name)
        new = subpixel_upsampling(copy.deepcopy(net))
        assert not any(isinstance(m, UpBlock2d) for m in new.modules())
        assert any(isinstance(m, SubpixelUpBlock2d) for m in new.modules())
    g = torch.Generator().manual_seed(3)
    source = torch.rand(1, 3, 64, 64, generator=g)
    kp_source, kp_driving = (torch.rand(n, 10, 2, generator=g) * 1.6 - 0.8 for n in (1, 2))
    dm, inp = model.dense_motion_network, model.inpainting_network
    dm2, inp2 = (subpixel_upsampling(copy.deepcopy(n)) for n in (dm, inp))
    with torch.no_grad():
        motion = dm(source, kp_driving, kp_source.expand(2, -1, -1))
        motion2 = dm2(source, kp_driving, kp_source.expand(2, -1, -1))
        assert (motion.deformation - motion2.deformation).abs().max() < 1e-5
        assert all((a - b).abs().max() < 1e-5 for a, b in zip(motion.occlusion, motion2.occlusion))
        assert (inp(source, motion).prediction - inp2(source, motion).prediction).abs().max() < 1e-5


def test_cpu_inference_copies_use_it_and_leave_the_model_alone():
    model = make_tiny_model()
    fast = inference_copy(model.inpainting_network, dtype=torch.float32, channels_last=True)
    assert any(isinstance(m, SubpixelUpBlock2d) for m in fast.modules())
    assert not any(isinstance(m, SubpixelUpBlock2d) for m in model.inpainting_network.modules())
