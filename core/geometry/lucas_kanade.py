"""Robust coarse-to-fine Lucas-Kanade: the global (camera) motion between two frames, without learning.

Used by the ``bg_motion="lk"`` background model (:class:`~tpsmm.core.networks.bg_motion.BGLucasKanade`):
a Gauss-Newton fit of one parametric warp to the whole frame pair, with Cauchy weights (iteratively
re-weighted least squares) so that the moving character counts little and the background decides.

Conventions (as everywhere in tpsmm, see :mod:`tpsmm.core.geometry.coords`): ``x`` is the column and ``y`` the row
coordinate, both in ``[-1, 1]`` with ``align_corners=True`` semantics. The result maps *driving*-frame
homogeneous coordinates ``(x, y, 1)`` to *source*-frame coordinates, the convention of ``bg_param`` in the
dense motion network: sampling ``source`` at ``A @ (x, y, 1)`` reproduces the driving frame's background.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from .coords import make_coordinate_grid, to_homogeneous

__all__ = ["MOTION_MODELS", "estimate_global_motion"]

#: Degrees of freedom of each motion model, as a basis of the six affine parameters
#: ``(a11, a12, a13, a21, a22, a23)`` (rows of the 2x3 matrix minus the identity).
MOTION_MODELS = {
    "translation": ((0, 0, 1, 0, 0, 0), (0, 0, 0, 0, 0, 1)),
    "zoom": ((0, 0, 1, 0, 0, 0), (0, 0, 0, 0, 0, 1), (1, 0, 0, 0, 1, 0)),
    "similarity": ((0, 0, 1, 0, 0, 0), (0, 0, 0, 0, 0, 1), (1, 0, 0, 0, 1, 0), (0, -1, 0, 1, 0, 0)),
    "affine": tuple(tuple(int(i == j) for j in range(6)) for i in range(6)),
}


def _pyramid(image: torch.Tensor, min_size: int) -> list[torch.Tensor]:
    """Coarse-to-fine list of 2x box-filtered copies, the coarsest with a side >= ``min_size``."""
    levels = [image]
    while min(levels[-1].shape[-2:]) // 2 >= min_size:
        levels.append(F.avg_pool2d(levels[-1], 2))
    return levels[::-1]


def _gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences in pixels per pixel (one-sided at the border): ``(d/dx, d/dy)``, each ``[B,C,H,W]``."""
    # kornia.filters.spatial_gradient(image, mode="diff") gives these values bit for bit, but as a 3x3
    # convolution it took 2.2 ms against 0.37 ms here (2x3x128x128, one CPU thread) and made a 256x256
    # estimate_global_motion 11-40% slower; this runs every Gauss-Newton step of every frame, so the
    # slices stay. (On CUDA a convolution would also fall under cuDNN's default TF32 rounding.)
    pad = F.pad(image, (1, 1, 1, 1), mode="replicate")
    gx = (pad[..., 1:-1, 2:] - pad[..., 1:-1, :-2]) / 2
    gy = (pad[..., 2:, 1:-1] - pad[..., :-2, 1:-1]) / 2
    return gx, gy


def _check(source: torch.Tensor, driving: torch.Tensor, model: str) -> None:
    if model not in MOTION_MODELS:
        raise ValueError(f"model={model!r}: expected one of {sorted(MOTION_MODELS)}")
    if source.ndim != 4 or source.shape != driving.shape:
        raise ValueError(f"source {tuple(source.shape)} and driving {tuple(driving.shape)} must both be "
                         "[B, C, H, W] with the same shape")
    if min(source.shape[-2:]) < 2:
        raise ValueError(f"frames of {tuple(source.shape[-2:])} pixels are too small to measure motion")


@dataclass(frozen=True)
class _Level:
    """One pyramid level and what stays fixed over its Gauss-Newton steps.

    Attributes:
        src, drv: ``[B, C, h, w]`` float32 images.
        homogeneous: ``[h, w, 3]`` pixel grid ``(x, y, 1)``, normalised.
        drv_gradients: :func:`_gradients` of ``drv``.
        half_scale: ``[2]`` half the pixels per normalised unit in x and y (ESM averages two gradients).
    """

    src: torch.Tensor
    drv: torch.Tensor
    homogeneous: torch.Tensor
    drv_gradients: tuple[torch.Tensor, torch.Tensor]
    half_scale: torch.Tensor

    @classmethod
    def of(cls, src: torch.Tensor, drv: torch.Tensor) -> "_Level":
        h, w = src.shape[-2:]
        grid = make_coordinate_grid(h, w, device=src.device, dtype=src.dtype)
        return cls(src=src, drv=drv, homogeneous=to_homogeneous(grid), drv_gradients=_gradients(drv),
                   half_scale=0.25 * torch.tensor([w - 1, h - 1], dtype=src.dtype, device=src.device))


def _gauss_newton_step(level: _Level, matrix: torch.Tensor, basis: torch.Tensor, eye: torch.Tensor, *,
                       robust_scale: float, damping: float) -> torch.Tensor:
    """One robust (Cauchy IRLS), damped Gauss-Newton step: ``[B, 2, 3]`` current warp -> ``[B, 6]`` update.

    ``basis`` is the ``[P, 6]`` motion model, ``eye`` the ``[P, P]`` identity for the damping.
    """
    src, drv, homogeneous = level.src, level.drv, level.homogeneous
    warped_grid = torch.einsum("brc,hwc->bhwr", matrix, homogeneous)
    warped = F.grid_sample(src, warped_grid, mode="bilinear", padding_mode="border", align_corners=True)
    inside = (warped_grid.abs() <= 1).all(dim=-1)  # [b, h, w]
    gsx, gsy = _gradients(warped)
    # efficient second-order (ESM-style) gradient, per normalised unit
    gx = (gsx + level.drv_gradients[0]) * level.half_scale[0]
    gy = (gsy + level.drv_gradients[1]) * level.half_scale[1]
    residual = warped - drv  # [b, C, h, w]
    r2 = residual.pow(2).sum(dim=1)  # [b, h, w]
    med = r2.flatten(1).median(dim=1).values.clamp_min(1e-8).sqrt()
    weight = inside / (1 + r2 / (robust_scale * med)[:, None, None].pow(2))  # Cauchy IRLS
    # d(warped coordinate)/d(affine parameter): u depends on a11..a13, v on a21..a23
    coord_jac = rearrange(homogeneous, "h w c -> c h w")
    jac6 = torch.cat([gx[:, :, None] * coord_jac, gy[:, :, None] * coord_jac], dim=2)  # [b,C,6,h,w]
    jac = torch.einsum("bcshw,ps->bcphw", jac6, basis)
    jw = jac * weight[:, None, None]
    normal = torch.einsum("bcphw,bcqhw->bpq", jw, jac)
    rhs = -torch.einsum("bcphw,bchw->bp", jw, residual)
    diag = normal.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)
    step = torch.linalg.solve(normal + damping * diag[:, None, None] * eye, rhs[..., None])[..., 0]
    return step @ basis


def estimate_global_motion(source: torch.Tensor, driving: torch.Tensor, *, model: str = "similarity",
                           min_size: int = 16, iterations: int = 10, robust_scale: float = 0.5,
                           damping: float = 1e-3) -> torch.Tensor:
    """Fit one global warp between two frames with robust Gauss-Newton (Lucas-Kanade, coarse to fine).

    Args:
        source, driving: ``[B, C, H, W]`` images of the same shape (any value range; float).
        model: ``"translation"`` (2 degrees of freedom), ``"zoom"`` (translation + isotropic scale),
            ``"similarity"`` (+ rotation) or ``"affine"`` (6).
        min_size: side of the coarsest pyramid level (2x box-filtered steps from the full size).
        iterations: Gauss-Newton steps per pyramid level.
        robust_scale: the Cauchy scale in units of the per-pair median absolute residual; residuals far above
            it (the moving foreground) get weights ~ (scale / r)^2.
        damping: Levenberg-Marquardt damping, relative to the mean diagonal of the normal matrix; keeps
            the identity where the frames have no texture to measure.

    Returns:
        ``[B, 3, 3]`` float32 homogeneous affine matrices mapping driving ``(x, y, 1)`` to source coordinates
        (normalised, ``align_corners=True``); third row ``(0, 0, 1)``. Not differentiable (computed under
        ``no_grad``): it has no parameters to train.
    """
    _check(source, driving, model)
    b, dev = source.shape[0], source.device
    with torch.no_grad(), torch.autocast(dev.type, enabled=False):  # float32 even under autocast
        dtype = torch.float32
        basis = torch.tensor(MOTION_MODELS[model], dtype=dtype, device=dev)  # [P, 6]
        params = torch.zeros(b, 6, dtype=dtype, device=dev)
        identity = torch.tensor([1.0, 0, 0, 0, 1, 0], dtype=dtype, device=dev)
        eye = torch.eye(basis.shape[0], dtype=dtype, device=dev)
        for src, drv in zip(_pyramid(source.to(dtype), min_size), _pyramid(driving.to(dtype), min_size)):
            level = _Level.of(src, drv)
            for _ in range(iterations):
                matrix = rearrange(params + identity, "b (r c) -> b r c", r=2)
                params = params + _gauss_newton_step(level, matrix, basis, eye, robust_scale=robust_scale,
                                                     damping=damping)
        rows = rearrange(params + identity, "b (r c) -> b r c", r=2)
        last = torch.tensor([0.0, 0.0, 1.0], dtype=dtype, device=dev).expand(b, 1, 3)
        return torch.cat([rows, last], dim=1)
