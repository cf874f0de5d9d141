"""Measuring high-resolution output (:mod:`tpsmm.core.animation.hires`): a synthetic case with a known
full-resolution ground truth, and two quality measures.

:func:`psnr` against the ground truth, and :func:`gradient_energy` (mean squared finite-difference
gradient of the luminance — higher = sharper). Used by ``benchmarks/animate_quality.py`` and
``tests/test_hires.py``; not part of the installed package.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from kornia.metrics import psnr as kornia_psnr

from tpsmm.core.animation.hires import upsample_flow
from tpsmm.core.geometry.coords import make_coordinate_grid

__all__ = ["gradient_energy", "psnr", "synthetic_case", "texture"]


def _luma(images: torch.Tensor) -> torch.Tensor:
    """``[B,3,H,W]`` -> ``[B,H,W]`` float32 Rec. 601 luminance."""
    return rgb_to_grayscale(images.float())[:, 0]


def gradient_energy(images: torch.Tensor) -> torch.Tensor:
    """Sharpness: ``[B,3,H,W]`` -> ``[B]`` mean of ``dx^2 + dy^2`` (forward differences of the luminance).

    Comparable only between images of the same size and content; ×255² for 8-bit units.
    """
    # Not kornia's spatial_gradient: its central/Sobel differences are blind to the finest detail (a
    # one-pixel checkerboard has zero central difference), which is what this measure must see.
    y = _luma(images)
    dx = y[:, :, 1:] - y[:, :, :-1]
    dy = y[:, 1:, :] - y[:, :-1, :]
    return (dx[:, :-1, :] ** 2 + dy[:, :, :-1] ** 2).mean(dim=(1, 2))


def psnr(images: torch.Tensor, reference: torch.Tensor, *, border: int = 0) -> torch.Tensor:
    """Peak signal-to-noise ratio of each image, values in ``[0, 1]``.

    Args:
        images, reference: ``[B,C,H,W]`` of the same shape.
        border: pixels ignored on every side.

    Returns:
        ``[B]`` float32 PSNR in dB (``inf`` where an image equals its reference).
    """
    if images.shape != reference.shape:
        raise ValueError(f"psnr: shapes differ: {tuple(images.shape)} vs {tuple(reference.shape)}")
    if border:
        images = images[..., border:-border, border:-border]
        reference = reference[..., border:-border, border:-border]
    # kornia's psnr pools one MSE over everything it is given, so it is called image by image
    return torch.stack([kornia_psnr(a.float(), b.float(), 1.0) for a, b in zip(images, reference)])


# ----------------------------------------------------------------------------- generated test data
def texture(n: int, seed: int) -> torch.Tensor:
    """``[1,3,n,n]`` detailed pattern: random oriented sinusoids at six scales plus a 32x32 checkerboard."""
    g = torch.Generator().manual_seed(seed)
    grid = make_coordinate_grid(n, n)[None]
    x, y = grid[..., 0], grid[..., 1]
    channels = []
    for _ in range(3):
        v = torch.zeros_like(x)
        for k in range(12):
            freq, th, phase = (float(r) for r in torch.rand(3, generator=g))
            freq, th = 2 ** (k % 6 + 1) * (1 + freq), th * math.pi
            v = v + torch.sin(freq * math.pi * (x * math.cos(th) + y * math.sin(th)) + 6 * phase) / (1 + k % 6)
        channels.append(v)
    img = torch.stack(channels, 1)
    img = (img - img.amin()) / (img.amax() - img.amin())
    checker = ((torch.floor((x + 1) * 16) + torch.floor((y + 1) * 16)) % 2)[:, None]
    return (0.7 * img + 0.3 * checker).clamp(0, 1)


def _field(h: int, w: int) -> torch.Tensor:
    """``[1,h,w,2]`` smooth analytic backward warp (affine plus gentle bends) sampled at ``h x w``."""
    grid = make_coordinate_grid(h, w)[None]
    x, y = grid[..., 0], grid[..., 1]
    return torch.stack([0.92 * x + 0.05 * y + 0.04 * torch.sin(2.5 * y) + 0.03,
                        -0.04 * x + 0.95 * y + 0.03 * torch.sin(3 * x) - 0.02], dim=-1)


def synthetic_case(model_size: int = 64, out_size: int = 256, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Generated data to measure high-resolution output against a full-resolution ground truth.

    A detailed texture is warped by a known smooth motion. The ground truth (``truth``, ``[1,3,O,O]``)
    warps a 2x supersampled texture with the field evaluated at full resolution, then downsamples. The
    "model" side is what a perfect model at ``model_size`` would give: the field sampled at
    ``model_size / 4`` (``deformation``, like the dense motion network), an occlusion map with a hidden
    rectangle (``occlusion``), and ``generated`` = the model-size source warped where visible, the
    downscaled truth where hidden. ``source`` is the texture at the output size.
    """
    o, s = out_size, model_size

    def down(img, n):
        return F.interpolate(img, size=(n, n), mode="bilinear", antialias=True, align_corners=False)

    tex = texture(2 * o, seed)
    truth = down(F.grid_sample(tex, _field(2 * o, 2 * o), mode="bicubic", align_corners=True).clamp(0, 1), o)
    flow = _field(s // 4, s // 4)
    occ = torch.ones(1, 1, s, s)
    occ[..., s // 3: s // 2, s // 2: 3 * s // 4] = 0
    occ = F.avg_pool2d(F.pad(occ, (2, 2, 2, 2), mode="replicate"), 5, 1)
    warped = F.grid_sample(down(tex, s), upsample_flow(flow, s), align_corners=True)
    generated = occ * warped + (1 - occ) * down(truth, s)
    return dict(source=down(tex, o), generated=generated, deformation=flow, occlusion=occ, truth=truth)
