"""Coordinate conventions shared by every network: normalised grids and keypoint heatmaps.

Convention (the reference's, used by every checkpoint): a point is ``(x, y)`` with ``x`` indexing
columns (width) and ``y`` rows (height), both in ``[-1, 1]`` with ``align_corners=True`` semantics —
``-1`` and ``+1`` are the centres of the first and last pixel. All ``grid_sample`` calls use
``align_corners=True``.
"""
from __future__ import annotations

import torch

__all__ = ["make_coordinate_grid", "kp2gaussian", "to_homogeneous", "from_homogeneous"]


def make_coordinate_grid(height: int, width: int, *, device: torch.device | str | None = None,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised pixel-centre grid.

    Args:
        height, width: grid size (each >= 2).
        device, dtype: where and how to build it.

    Returns:
        Tensor ``[height, width, 2]``; element ``[i, j] = (x_j, y_i)`` with
        ``x_j = 2 * (j / (width - 1)) - 1`` (that exact operation order, so values match the release bit for bit).
    """
    if height < 2 or width < 2:
        raise ValueError(f"make_coordinate_grid: height and width must be >= 2, got {height}x{width}")
    x = torch.arange(width, device=device, dtype=dtype)
    y = torch.arange(height, device=device, dtype=dtype)
    x = 2 * (x / (width - 1)) - 1
    y = 2 * (y / (height - 1)) - 1
    xx = x.view(1, -1).expand(height, width)
    yy = y.view(-1, 1).expand(height, width)
    return torch.stack([xx, yy], dim=-1)


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
    """Append a 1: ``[..., 2] -> [..., 3]``."""
    return torch.cat([coords, torch.ones_like(coords[..., :1])], dim=-1)


def from_homogeneous(coords: torch.Tensor) -> torch.Tensor:
    """Divide by the last component: ``[..., 3] -> [..., 2]``."""
    return coords[..., :2] / coords[..., 2:3]
