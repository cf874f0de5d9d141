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

How much this gains is measured in ``benchmarks/hires_case.py`` (a synthetic case with a
full-resolution ground truth, PSNR and a sharpness measure), used by the tests and the benchmark.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from ..media.resize import resize
from ..media.size import Size

__all__ = ["upsample_flow", "upscale_frames", "render_hires"]


def upsample_flow(deformation: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``[B,h,w,2]`` absolute sampling coordinates -> ``[B,H,W,2]`` (bilinear, ``align_corners=True``).

    The coordinates are normalised (``[-1, 1]``), so upsampling needs no rescaling of the values.
    """
    if deformation.ndim != 4 or deformation.shape[-1] != 2:
        raise ValueError(f"deformation: expected [B,h,w,2], got {tuple(deformation.shape)}")
    hw = Size.of(size, least=2)
    if tuple(deformation.shape[1:3]) == hw:
        return deformation
    d = rearrange(deformation.float(), "b h w c -> b c h w")
    d = F.interpolate(d, size=hw, mode="bilinear", align_corners=True)
    return rearrange(d, "b c h w -> b h w c")


def upscale_frames(frames: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``[B,C,h,w] -> [B,C,H,W]`` float32 by the ``picture`` policy of :mod:`tpsmm.core.media.resize`."""
    return resize(frames, Size.of(size, least=2), policy="picture").float()


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
    hw = Size.of(size, least=2) if size is not None else tuple(source.shape[2:])
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
