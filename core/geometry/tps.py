"""Thin-plate spline transformations (paper Eq. 2) with the release's exact numerics.

Two kinds are used:

* **Keypoint TPS** (:func:`tps_solve` + :func:`tps_warp`): ``K`` splines, each fitted to 5 control
  points. The spline maps **driving-frame** coordinates to **source** coordinates (a backward warp,
  ready for ``grid_sample`` on the source).
* **Random TPS** (:class:`RandomTPS`): the random deformation of the equivariance loss.

Numerics kept from the release (official weights depend on them):

* kernel ``U(s) = s * log(s + 1e-9)`` with ``s`` the *squared* distance (i.e. ``r^2 log r^2``);
* a ridge ``0.01 * I`` added to the whole 8x8 system (affine block included), so ``TPS(kp, kp)`` is
  *not* the identity;
* the system solved through an explicit batched inverse — except while exporting to ONNX, which
  has no inverse op: there :func:`~tpsmm.core.geometry.linsolve.householder_solve` (standard ops,
  stable in float32) takes its place, see :func:`tps_solve`.

Relation to kornia (measured, see ``tests/test_tps.py::test_warp_matches_kornia``):

* The solve stays ours: ``kornia.geometry.transform.get_tps_transform`` solves the exact interpolation
  system, without the release's ``0.01`` ridge on the whole 8x8 system, so it fits a different spline
  than the one every official checkpoint was trained with.
* The warp stays ours too: ``kornia.geometry.transform.warp_points_tps`` given our solved weights
  (times 2, its kernel is ``0.5 * r^2 log r^2``) reproduces :func:`tps_warp` to ~7e-6 in float32
  (1e-11 in float64; parity fixture ``tps.grid``: 7.9e-6 vs our 5.1e-6), but at the dense-motion size
  (10 splines over a 64x64 grid) it is ~2.4x slower on CPU (B=1: 14.7 vs 6.2 ms; B=8: 126 vs 48 ms,
  one thread), as it broadcasts ``[B, M, P, 2]`` products where we use one matmul, and
  :func:`tps_grid` runs on every frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange

from .coords import make_coordinate_grid
from .linsolve import householder_solve

__all__ = ["TPS_RIDGE", "TPSParams", "tps_kernel", "tps_solve", "tps_warp", "tps_grid", "RandomTPS"]

TPS_RIDGE = 0.01
_LOG_EPS = 1e-9


def tps_kernel(sq_dist: torch.Tensor) -> torch.Tensor:
    """Radial basis ``U(s) = s * log(s + 1e-9)`` of a squared distance ``s`` (any shape)."""
    return sq_dist * torch.log(sq_dist + _LOG_EPS)


@dataclass(frozen=True)
class TPSParams:
    """Fitted keypoint splines.

    Attributes:
        control_points: ``[B, K, P, 2]`` driving keypoints (x, y) the splines are anchored at.
        weights: ``[B, K, P, 2]`` non-affine weights ``W``.
        affine: ``[B, K, 2, 3]`` affine part ``A`` (``A[..., :2]`` linear, ``A[..., 2]`` translation).
    """

    control_points: torch.Tensor
    weights: torch.Tensor
    affine: torch.Tensor


def tps_solve(kp_driving: torch.Tensor, kp_source: torch.Tensor) -> TPSParams:
    """Fit one TPS per group mapping driving control points to source points.

    Args:
        kp_driving: ``[B, K, P, 2]`` control points ``p`` (x, y) in the driving frame.
        kp_source: ``[B, K, P, 2]`` targets ``q`` in the source frame.

    Returns:
        :class:`TPSParams`. Solves ``(L + 0.01 I) [W; A^T] = [q; 0]`` with
        ``L = [[U(|p_i - p_j|^2), P], [P^T, 0]]`` and ``P`` rows ``(x_i, y_i, 1)``.
    """
    if kp_driving.ndim != 4 or kp_driving.shape[-1] != 2:
        raise ValueError(f"tps_solve: kp_driving must be [B, K, P, 2], got {tuple(kp_driving.shape)}")
    if kp_source.shape != kp_driving.shape:
        raise ValueError(f"tps_solve: kp_source {tuple(kp_source.shape)} must match kp_driving "
                         f"{tuple(kp_driving.shape)}")
    b, k, n, _ = kp_driving.shape
    dist = torch.linalg.vector_norm(kp_driving[:, :, :, None] - kp_driving[:, :, None, :], dim=-1) ** 2
    kernel = tps_kernel(dist)                                                   # [B,K,P,P]
    p = torch.cat([kp_driving, torch.ones_like(kp_driving[..., :1])], dim=-1)   # [B,K,P,3]
    top = torch.cat([kernel, p], dim=-1)                                        # [B,K,P,P+3]
    bottom = torch.cat([p.transpose(-1, -2), p.new_zeros(b, k, 3, 3)], dim=-1)  # [B,K,3,P+3]
    system = torch.cat([top, bottom], dim=-2)
    system = system + TPS_RIDGE * torch.eye(n + 3, dtype=system.dtype, device=system.device)
    rhs = torch.cat([kp_source, kp_source.new_zeros(b, k, 3, 2)], dim=-2)       # [B,K,P+3,2]
    if torch.onnx.is_in_onnx_export():     # ONNX has no inverse: an unrolled QR solve of standard ops
        params = householder_solve(system, rhs)
    else:
        params = torch.matmul(torch.linalg.inv_ex(system).inverse, rhs)   # torch.inverse without its error
                                                                           # check, a device sync (CUDA graphs)
    return TPSParams(control_points=kp_driving, weights=params[:, :, :n],
                     affine=params[:, :, n:].transpose(-1, -2))


def tps_warp(params: TPSParams, points: torch.Tensor) -> torch.Tensor:
    """Apply fitted splines to points.

    Args:
        params: from :func:`tps_solve` (``B`` batches of ``K`` splines).
        points: ``[B, M, 2]`` or ``[1, M, 2]`` points (x, y) in the driving frame.

    Returns:
        ``[B, K, M, 2]`` source-frame coordinates ``A[:, :2] z + A[:, 2] + sum_i W_i U(|z - p_i|^2)``.
    """
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"tps_warp: points must be [B, M, 2], got {tuple(points.shape)}")
    a = params.affine
    linear = torch.matmul(a[..., :2], rearrange(points, "b m c -> b 1 c m")) + a[..., 2:]   # [B,K,2,M]
    diff = points[:, None, None, :, :] - params.control_points[:, :, :, None, :]           # [B,K,P,M,2]
    basis = tps_kernel((diff ** 2).sum(-1))                                                 # [B,K,P,M]
    bent = torch.matmul(basis.transpose(-1, -2), params.weights)                            # [B,K,M,2]
    return linear.transpose(-1, -2) + bent


def tps_grid(params: TPSParams, height: int, width: int) -> torch.Tensor:
    """Sampling grids of every spline over a ``height x width`` frame.

    Returns:
        ``[B, K, height, width, 2]``: for each driving pixel, the (x, y) source position to sample
        (``grid_sample`` with ``align_corners=True``).
    """
    cp = params.control_points
    grid = make_coordinate_grid(height, width, device=cp.device, dtype=cp.dtype)
    warped = tps_warp(params, rearrange(grid, "h w c -> 1 (h w) c"))
    return rearrange(warped, "b k (h w) c -> b k h w c", h=height, w=width)


class RandomTPS:
    """Random TPS deformation used by the equivariance loss (reference ``TPS(mode='random')``).

    ``theta = I_{2x3} + N(0, sigma_affine^2)`` per sample and one scalar weight ``w_m ~ N(0, sigma_tps^2)``
    per control point of a ``points x points`` grid, added to both x and y. Noise is drawn with
    ``generator`` (theta first, then weights), on CPU like the release, then moved to ``device``.
    """

    def __init__(self, *, batch: int, sigma_affine: float, sigma_tps: float, points: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 generator: torch.Generator | None = None) -> None:
        if batch < 1 or points < 2:
            raise ValueError(f"RandomTPS: need batch >= 1 and points >= 2, got {batch}, {points}")
        noise = torch.normal(0.0, sigma_affine * torch.ones(batch, 2, 3), generator=generator)
        self.theta = (noise + torch.eye(2, 3)).to(device=device, dtype=dtype)
        self.control_points = make_coordinate_grid(points, points, dtype=dtype, device=device).reshape(-1, 2)
        self.weights = torch.normal(0.0, sigma_tps * torch.ones(batch, 1, points ** 2),
                                    generator=generator).to(device=device, dtype=dtype)

    def warp_points(self, points: torch.Tensor) -> torch.Tensor:
        """``[B, M, 2] -> [B, M, 2]``: apply the random transformation to (x, y) points."""
        theta = self.theta.to(points.dtype)
        out = torch.einsum("bij,bmj->bmi", theta[:, :, :2], points) + theta[:, None, :, 2]
        diff = points[:, :, None, :] - self.control_points.to(points.dtype)[None, None]    # [B,M,C,2]
        bent = (tps_kernel((diff ** 2).sum(-1)) * self.weights.to(points.dtype)).sum(-1)   # [B,M]
        return out + bent[..., None]

    def grid(self, height: int, width: int) -> torch.Tensor:
        """``[B, height, width, 2]`` sampling grid (x, y) over a full frame."""
        b = self.theta.shape[0]
        grid = make_coordinate_grid(height, width, device=self.theta.device, dtype=self.theta.dtype)
        pts = rearrange(grid, "h w c -> 1 (h w) c").expand(b, -1, -1)
        return rearrange(self.warp_points(pts), "b (h w) c -> b h w c", h=height, w=width)
