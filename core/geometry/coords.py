"""Coordinate conventions shared by every network: normalised grids and keypoint heatmaps.

Convention (the reference's, used by every checkpoint): a point is ``(x, y)`` with ``x`` indexing
columns (width) and ``y`` rows (height), both in ``[-1, 1]`` with ``align_corners=True`` semantics —
``-1`` and ``+1`` are the centres of the first and last pixel. All ``grid_sample`` calls use
``align_corners=True``.
"""
from __future__ import annotations

import torch
from kornia.geometry import create_meshgrid
from kornia.geometry.conversions import convert_points_from_homogeneous, convert_points_to_homogeneous

__all__ = ["make_coordinate_grid", "kp2gaussian", "to_homogeneous", "from_homogeneous"]


def make_coordinate_grid(height: int, width: int, *, device: torch.device | str | None = None,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised pixel-centre grid.

    Args:
        height, width: grid size (each >= 2).
        device, dtype: where and how to build it.

    Returns:
        Tensor ``[height, width, 2]``; element ``[i, j] = (x_j, y_i)`` with
        ``x_j = 2 * j / (width - 1) - 1`` (bit for bit the release's values in float32/float64).
    """
    if height < 2 or width < 2:
        raise ValueError(f"make_coordinate_grid: height and width must be >= 2, got {height}x{width}")
    # kornia's ``(j / (W - 1) - 0.5) * 2`` equals the release's ``2 * (j / (W - 1)) - 1`` bit for bit in
    # float32 and float64 (checked for every size 2..2049); in bfloat16/float16 kornia normalises in float32
    # and rounds once, which is more accurate than the release's half-precision ramp.
    return create_meshgrid(height, width, normalized_coordinates=True, device=device, dtype=dtype,
                           align_corners=True)[0].contiguous()


def kp2gaussian(kp: torch.Tensor, height: int, width: int, variance: float) -> torch.Tensor:
    """Gaussian heatmap around every keypoint.

    Args:
        kp: ``[B, N, 2]`` keypoints, ``(x, y)`` in ``[-1, 1]``.
        height, width: heatmap size.
        variance: isotropic variance in normalised units (0.01 in the release).

    Returns:
        ``[B, N, height, width]`` with ``exp(-0.5 * |grid - kp|^2 / variance)``.
    """
    if kp.ndim != 3 or kp.shape[-1] != 2:
        raise ValueError(f"kp2gaussian: kp must be [B, N, 2], got {tuple(kp.shape)}")
    grid = make_coordinate_grid(height, width, device=kp.device, dtype=kp.dtype)
    diff = grid[None, None] - kp[:, :, None, None, :]
    return torch.exp(-0.5 * (diff ** 2).sum(-1) / variance)


def to_homogeneous(coords: torch.Tensor) -> torch.Tensor:
    """Append a 1: ``[..., N, 2] -> [..., N, 3]`` (at least 2-D)."""
    return convert_points_to_homogeneous(coords)


def from_homogeneous(coords: torch.Tensor) -> torch.Tensor:
    """Divide by the last component: ``[..., N, 3] -> [..., N, 2]`` (at least 2-D).

    Points with ``|w| <= 1e-8`` are returned undivided (kornia's, i.e. OpenCV's, convention) instead of
    becoming ``inf``; for the background affine (``w == 1``) the result equals a plain division bit for bit.
    """
    return convert_points_from_homogeneous(coords)
