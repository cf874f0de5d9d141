"""Tests for tpsmm.core.animation.hires: flow-based high-resolution output against a full-resolution ground truth."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tpsmm.core.geometry.coords import make_coordinate_grid
from tpsmm.core.animation.hires import render_hires, upsample_flow, upscale_frames

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from hires_case import gradient_energy, psnr, synthetic_case  # noqa: E402  (the kit lives with the benchmarks)


def test_flow_upscaling_beats_bicubic_against_full_resolution_truth():
    case = synthetic_case(64, 256)
    source_hr, generated, flow, occ, gt = (case[k] for k in ("source", "generated", "deformation", "occlusion",
                                                               "truth"))
    hires = render_hires(source_hr, generated, flow, occ, size=256)
    bicubic = upscale_frames(generated, 256)
    p_hires, p_bicubic = float(psnr(hires, gt, border=8)), float(psnr(bicubic, gt, border=8))
    assert p_hires > p_bicubic + 6, (p_hires, p_bicubic)
    e_hires, e_bicubic, e_gt = (float(gradient_energy(x)) for x in (hires, bicubic, gt))
    assert e_hires > 2 * e_bicubic and e_hires < 1.2 * e_gt, (e_hires, e_bicubic, e_gt)
    # the hidden region comes from the generator: there the result equals the bicubic upscale
    assert (hires[..., 100:110, 140:170] - bicubic[..., 100:110, 140:170]).abs().max() < 1e-5


def test_render_hires_limits():
    src = torch.rand(1, 3, 32, 48)
    ident = make_coordinate_grid(8, 8)[None].expand(2, -1, -1, -1)
    gen = torch.rand(2, 3, 16, 16)
    ones, zeros = torch.ones(2, 16, 16), torch.zeros(2, 1, 16, 16)
    assert torch.allclose(render_hires(src, gen, ident, ones), src.expand(2, -1, -1, -1), atol=1e-5)
    assert torch.allclose(render_hires(src, gen, ident, zeros, size=(32, 48)), upscale_frames(gen, (32, 48)))
    assert render_hires(src, gen, ident, ones, size=(20, 30), interpolation="bilinear").shape == (2, 3, 20, 30)
    assert torch.allclose(upsample_flow(ident, (40, 24)), make_coordinate_grid(40, 24)[None], atol=1e-6)
    with pytest.raises(ValueError, match="interpolation"):
        render_hires(src, gen, ident, ones, interpolation="nearest")
    with pytest.raises(ValueError, match="batch"):
        render_hires(src, gen[:1], ident, ones)


def test_measures():
    flat, noisy = torch.full((1, 3, 16, 16), 0.5), torch.rand(1, 3, 16, 16)
    assert float(gradient_energy(flat)) == 0 and float(gradient_energy(noisy)) > 0
    assert float(psnr(flat + 0.1, flat)) == pytest.approx(20, abs=1e-3)


def test_psnr_is_per_image_and_gradient_energy_sees_pixel_detail():
    ref = torch.zeros(2, 3, 12, 12)
    out = ref.clone()
    out[0] += 0.1
    out[1, :, 2:-2, 2:-2] += 0.01                     # only inside a 2-pixel border
    p = psnr(out, ref, border=2)
    assert p.shape == (2,) and p.dtype == torch.float32
    assert p.tolist() == pytest.approx([20.0, 40.0], abs=1e-3)
    assert float(psnr(out, ref)[1]) > 43              # the exact border counts when not ignored
    assert torch.isinf(psnr(ref, ref)).all()
    assert float(psnr(out.bfloat16(), ref.bfloat16())[0]) == pytest.approx(20.0, abs=0.05)
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None]) % 2).float().expand(1, 3, 8, 8)
    assert float(gradient_energy(checker)) == pytest.approx(2.0)   # dx^2 + dy^2 = 1 + 1 everywhere
