"""TPS warps: identity and affine cases, the release's ridge, gradcheck in float64, exceptions."""
from __future__ import annotations

import pytest
import torch

from kornia.geometry.transform import warp_points_tps

from tpsmm.core.geometry.coords import from_homogeneous, kp2gaussian, make_coordinate_grid, to_homogeneous
from tpsmm.core.geometry.tps import RandomTPS, tps_grid, tps_kernel, tps_solve, tps_warp


def _kp(b=2, k=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, k, 5, 2, generator=g, dtype=dtype) * 1.6 - 0.8)


def test_grid_convention():
    grid = make_coordinate_grid(3, 5)
    assert grid.shape == (3, 5, 2)
    assert torch.equal(grid[0, 0], torch.tensor([-1.0, -1.0]))
    assert torch.equal(grid[2, 4], torch.tensor([1.0, 1.0]))
    assert torch.equal(grid[1, 2], torch.tensor([0.0, 0.0]))   # (x, y) order: x varies along width
    assert torch.equal(grid[0, 1], torch.tensor([-0.5, -1.0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grid_is_the_release_formula_bit_for_bit(dtype):
    for n in (*range(2, 70), 255, 256, 257, 383, 384, 511, 512, 1023, 1024, 2048):
        ramp = torch.arange(n, dtype=dtype)
        release = 2 * (ramp / (n - 1)) - 1
        grid = make_coordinate_grid(2, n, dtype=dtype)
        assert torch.equal(grid[0, :, 0], release), n
        assert torch.equal(make_coordinate_grid(n, 2, dtype=dtype)[:, 0, 1], release), n


def test_half_precision_grid_is_rounded_once():
    """bfloat16 grids are the float32 grid rounded once (not a bfloat16 ramp divided in bfloat16)."""
    for n in (64, 300, 1024):
        assert torch.equal(make_coordinate_grid(n, n, dtype=torch.bfloat16),
                           make_coordinate_grid(n, n).to(torch.bfloat16)), n


def test_homogeneous_coordinates():
    pts = torch.rand(2, 7, 2)
    hom = to_homogeneous(pts)
    assert hom.shape == (2, 7, 3) and torch.equal(hom[..., 2], torch.ones(2, 7))
    assert torch.equal(from_homogeneous(hom), pts)
    scaled = torch.tensor([[[2.0, 4.0, 2.0], [2.0, 4.0, -4.0], [3.0, 5.0, 0.0]]])
    assert torch.equal(from_homogeneous(scaled), torch.tensor([[[1.0, 2.0], [-0.5, -1.0], [3.0, 5.0]]]))


def test_kernel_values():
    s = torch.tensor([0.0, 1.0, 4.0], dtype=torch.float64)
    assert torch.allclose(tps_kernel(s), torch.tensor([0.0, 0.0, 4 * torch.log(torch.tensor(4.0)).item()],
                                                      dtype=torch.float64))


def test_translation_is_reproduced_up_to_ridge():
    """Pure translation: the fit is exact in the affine part except for the 0.01 ridge's shrinkage."""
    kp = _kp()
    shift = torch.tensor([0.1, -0.2], dtype=torch.float64)
    params = tps_solve(kp, kp + shift)
    out = tps_warp(params, kp.reshape(2, -1, 2)[:, :5])
    assert out.shape == (2, 3, 5, 2)
    target = kp[:, 0] + shift
    assert (out[:, 0] - target).abs().max() < 0.1      # close ...
    assert (out[:, 0] - target).abs().max() > 1e-6     # ... but not exact: the ridge is kept (release numerics)


def test_ridge_makes_self_fit_not_identity():
    kp = _kp(seed=3)
    params = tps_solve(kp, kp)
    grid = tps_grid(params, 8, 8)
    ident = make_coordinate_grid(8, 8, dtype=torch.float64)
    assert grid.shape == (2, 3, 8, 8, 2)
    dev = (grid - ident).abs().max()
    assert 1e-4 < dev < 0.5


def test_affine_points_map_affinely_far_from_ridge_effect():
    """With a tiny ridge effect (large-scale affine target), interior points follow the affine map closely."""
    kp = _kp(seed=5)
    a = torch.tensor([[1.1, 0.2], [-0.1, 0.9]], dtype=torch.float64)
    params = tps_solve(kp, kp @ a.T)
    # the non-affine weights stay small compared with the affine part
    assert params.weights.abs().max() < 0.2
    assert torch.allclose(params.affine[..., :2].mean(dim=(0, 1)), a, atol=0.1)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 5e-5), (torch.float64, 1e-10)])
def test_warp_matches_kornia(dtype, tol):
    """kornia's ``warp_points_tps`` with our solved weights (x2 for its 0.5 kernel) gives the same warp."""
    kp_d = _kp(b=2, k=10, seed=11, dtype=dtype)
    params = tps_solve(kp_d, kp_d + 0.1 * _kp(b=2, k=10, seed=12, dtype=dtype))
    pts = make_coordinate_grid(16, 24, dtype=dtype).reshape(1, -1, 2)
    b, k, p, _ = params.weights.shape
    affine = params.affine.transpose(-1, -2)[..., [2, 0, 1], :]     # kornia rows: (translation, x, y)
    theirs = warp_points_tps(pts.expand(b * k, -1, -1), params.control_points.reshape(b * k, p, 2),
                             2 * params.weights.reshape(b * k, p, 2), affine.reshape(b * k, 3, 2))
    assert (tps_warp(params, pts) - theirs.reshape(b, k, -1, 2)).abs().max() < tol


def test_gradcheck_float64():
    kp_d = _kp(b=1, k=2, seed=1).requires_grad_(True)
    kp_s = _kp(b=1, k=2, seed=2).requires_grad_(True)
    pts = (torch.rand(1, 7, 2, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d, s, p: tps_warp(tps_solve(d, s), p), (kp_d, kp_s, pts))


def test_gradcheck_heatmap():
    kp = (torch.rand(1, 3, 2, dtype=torch.float64) - 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda k: kp2gaussian(k, 5, 6, 0.01), (kp,))


def test_batch_independence():
    kp_d, kp_s = _kp(seed=7), _kp(seed=8)
    full = tps_grid(tps_solve(kp_d, kp_s), 6, 7)
    one = tps_grid(tps_solve(kp_d[1:], kp_s[1:]), 6, 7)
    assert torch.allclose(full[1:], one)


def test_random_tps_identity_when_sigmas_zero():
    tps = RandomTPS(batch=2, sigma_affine=0.0, sigma_tps=0.0, points=5, dtype=torch.float64)
    grid = tps.grid(6, 9)
    assert torch.allclose(grid, make_coordinate_grid(6, 9, dtype=torch.float64).expand(2, -1, -1, -1))
    pts = torch.rand(2, 4, 2, dtype=torch.float64)
    assert torch.allclose(tps.warp_points(pts), pts)


def test_random_tps_reproducible_with_generator():
    a = RandomTPS(batch=2, sigma_affine=0.05, sigma_tps=0.005, points=5, generator=torch.Generator().manual_seed(1))
    b = RandomTPS(batch=2, sigma_affine=0.05, sigma_tps=0.005, points=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.grid(4, 4), b.grid(4, 4))
    assert not torch.allclose(a.grid(4, 4), make_coordinate_grid(4, 4).expand(2, -1, -1, -1))


@pytest.mark.parametrize("bad", [torch.zeros(2, 5, 2), torch.zeros(1, 2, 5, 3)])
def test_solve_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match="tps_solve"):
        tps_solve(bad, bad)


def test_solve_rejects_mismatch():
    with pytest.raises(ValueError, match="must match"):
        tps_solve(torch.zeros(1, 2, 5, 2), torch.zeros(1, 3, 5, 2))


def test_warp_rejects_bad_points():
    params = tps_solve(_kp(), _kp(seed=1))
    with pytest.raises(ValueError, match="points"):
        tps_warp(params, torch.zeros(2, 5))


def test_grid_rejects_tiny():
    with pytest.raises(ValueError, match=">= 2"):
        make_coordinate_grid(1, 4)
