"""High-resolution output from a model that runs at ``S x S`` (256² for the released checkpoints).

Plain upscaling of the model's ``S x S`` frame only blurs. But most of an animated frame is the
source photo moved by a smooth motion field, and that field can be applied to the full-resolution
photo directly. :func:`render_hires`:

1. takes the dense motion estimated at model size (``deformation``, absolute source coordinates);
2. upsamples it (bilinear, ``align_corners=True``: the field is a smooth function of normalised
   coordinates, so it stays exact in that frame) to the output size ``H x W``;
3. warps the full-resolution source with it (``grid_sample``) — every visible pixel keeps the
   photo's own detail;
4. uses the generator's output, upscaled (bicubic), only where the occlusion mask says the source
   is missing: ``out = occ * warped_hr + (1 - occ) * upscale(generated)``, with the finest occlusion
   map upsampled bilinearly.

Since the model's own prediction is ``generated * (1 - occ) + warped_lr * occ``, this equals the
model's output wherever the source is hidden and is the same warp at full resolution elsewhere.

Quality measures (used by the tests and ``benchmarks/animate.py``): :func:`psnr` against a
full-resolution ground truth, and :func:`gradient_energy` (mean squared finite-difference gradient
of the luminance — higher = sharper).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from kornia.color import rgb_to_grayscale
from kornia.metrics import psnr as kornia_psnr

from ..geometry.coords import make_coordinate_grid
from ..media.resize import resize

__all__ = ["upsample_flow", "upscale_frames", "render_hires", "gradient_energy", "psnr", "synthetic_case"]


def _hw(size) -> tuple[int, int]:
    hw = (size, size) if isinstance(size, int) else tuple(int(v) for v in size)
    if len(hw) != 2 or min(hw) < 2:
        raise ValueError(f"size: expected an int or (height, width) >= 2, got {size!r}")
    return hw


def upsample_flow(deformation: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``[B,h,w,2]`` absolute sampling coordinates -> ``[B,H,W,2]`` (bilinear, ``align_corners=True``).

    The coordinates are normalised (``[-1, 1]``), so upsampling needs no rescaling of the values.
    """
    if deformation.ndim != 4 or deformation.shape[-1] != 2:
        raise ValueError(f"deformation: expected [B,h,w,2], got {tuple(deformation.shape)}")
    hw = _hw(size)
    if tuple(deformation.shape[1:3]) == hw:
        return deformation
    d = rearrange(deformation.float(), "b h w c -> b c h w")
    d = F.interpolate(d, size=hw, mode="bilinear", align_corners=True)
    return rearrange(d, "b c h w -> b h w c")


def upscale_frames(frames: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``[B,C,h,w] -> [B,C,H,W]`` float32 by the ``picture`` policy of :mod:`tpsmm.core.media.resize`."""
    return resize(frames, _hw(size), policy="picture").float()


def render_hires(source: torch.Tensor, generated: torch.Tensor, deformation: torch.Tensor,
                 occlusion: torch.Tensor, *, size: int | tuple[int, int] | None = None,
                 interpolation: str = "bicubic") -> torch.Tensor:
    """Compose high-resolution frames from model-size motion (see the module docstring).

    Args:
        source: ``[1,3,Hs,Ws]`` float source in ``[0,1]`` at full resolution (model layout).
        generated: ``[B,3,S,S]`` the model's predictions.
        deformation: ``[B,h,w,2]`` dense motion (absolute source coordinates, ``DenseMotion.deformation``).
        occlusion: ``[B,1,h',w']`` or ``[B,h',w']`` finest occlusion map (1 = source visible).
        size: output ``(H, W)`` (int = square); ``None`` = the source's size. The source is resized
            to it first (antialiased bicubic) if needed.
        interpolation: ``grid_sample`` mode for the full-resolution warp, ``"bicubic"`` or ``"bilinear"``.

    Returns:
        ``[B,3,H,W]`` float32 in ``[0,1]`` on ``generated``'s device.
    """
    if source.ndim != 4 or source.shape[0] != 1:
        raise ValueError(f"source: expected [1,3,H,W], got {tuple(source.shape)}")
    if generated.ndim != 4 or deformation.shape[0] != generated.shape[0]:
        raise ValueError(f"generated {tuple(generated.shape)} and deformation {tuple(deformation.shape)} "
                         "must have the same batch")
    if interpolation not in ("bicubic", "bilinear"):
        raise ValueError(f"interpolation: expected 'bicubic' or 'bilinear', got {interpolation!r}")
    if occlusion.ndim == 3:
        occlusion = occlusion[:, None]
    hw = _hw(size) if size is not None else tuple(source.shape[2:])
    dev = generated.device
    src = upscale_frames(source.to(dev), hw)
    out = []
    for i in range(generated.shape[0]):       # one frame at a time: memory ~ a few full-size frames
        grid = upsample_flow(deformation[i:i + 1].to(dev), hw)
        warped = F.grid_sample(src, grid, mode=interpolation, padding_mode="zeros", align_corners=True)
        occ = F.interpolate(occlusion[i:i + 1].float().to(dev), size=hw, mode="bilinear", align_corners=True)
        gen = upscale_frames(generated[i:i + 1], hw)
        out.append((occ * warped.clamp(0, 1) + (1 - occ) * gen).clamp(0, 1))
    return torch.cat(out)


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
def _texture(n: int, seed: int) -> torch.Tensor:
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

    tex = _texture(2 * o, seed)
    truth = down(F.grid_sample(tex, _field(2 * o, 2 * o), mode="bicubic", align_corners=True).clamp(0, 1), o)
    flow = _field(s // 4, s // 4)
    occ = torch.ones(1, 1, s, s)
    occ[..., s // 3: s // 2, s // 2: 3 * s // 4] = 0
    occ = F.avg_pool2d(F.pad(occ, (2, 2, 2, 2), mode="replicate"), 5, 1)
    warped = F.grid_sample(down(tex, s), upsample_flow(flow, s), align_corners=True)
    generated = occ * warped + (1 - occ) * down(truth, s)
    return dict(source=down(tex, o), generated=generated, deformation=flow, occlusion=occ, truth=truth)
