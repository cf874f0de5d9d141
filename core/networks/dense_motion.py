"""Dense motion network: K TPS + background transformations blended by contribution maps (Eq. 5-8),
plus multi-resolution occlusion masks."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from .blocks import AntiAliasInterpolation2d, Hourglass, UpBlock2d
from ..geometry.coords import from_homogeneous, kp2gaussian, make_coordinate_grid, to_homogeneous
from .precision import float32_region, into_trunk
from ..geometry.tps import tps_grid, tps_solve

__all__ = ["DenseMotion", "DenseMotionNetwork", "dropout_softmax"]


@dataclass
class DenseMotion:
    """Output of :class:`DenseMotionNetwork` (``h x w`` = frame size x ``scale_factor``).

    Attributes:
        deformation: ``[B, h, w, 2]`` absolute (x, y) source coordinates to sample for each driving pixel.
        contribution_maps: ``[B, K+1, h, w]`` softmax weights of the transformations (index 0 = background).
        occlusion: list of ``[B, 1, h_i, w_i]`` masks in ``[0, 1]``, coarse to fine (H/8, H/4, H/2, H for the
            release); 1 = take the warped source, 0 = inpaint.
        deformed_source: ``[B, K+1, C, h, w]`` the downscaled source warped by every transformation.
    """

    deformation: torch.Tensor
    contribution_maps: torch.Tensor
    occlusion: list[torch.Tensor]
    deformed_source: torch.Tensor


def dropout_softmax(logits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Softmax over dim 1 with TPS dropout (Eq. 7-8), as released.

    Each transformation ``k >= 1`` of each sample is dropped with probability ``p`` (mask drawn with
    ``torch.rand`` on CPU, constant over space; the background, index 0, is always kept). The partition
    gets ``+1e-6``; there is no ``1/(1-p)`` rescaling (the release's line for it has no effect).

    Args:
        logits: ``[B, K+1, h, w]``.
    """
    b, n = logits.shape[:2]
    keep = (torch.rand(b, n, generator=generator) < (1 - p)).to(dtype=logits.dtype, device=logits.device)
    keep[:, 0] = 1
    e = torch.exp(logits - logits.max(dim=1, keepdim=True).values) * keep[:, :, None, None]
    return e / (e.sum(dim=1, keepdim=True) + 1e-6)


class DenseMotionNetwork(nn.Module):
    """``(source [B,C,H,W], kp_driving [B,5K,2], kp_source [B,5K,2]) -> DenseMotion``.

    The source may have batch 1 while the keypoints have batch B (it is broadcast), which lets one
    source drive a batch of frames.
    """

    def __init__(self, *, num_tps: int, num_channels: int = 3, block_expansion: int = 64, num_blocks: int = 5,
                 max_features: int = 1024, scale_factor: float = 0.25, multi_mask: bool = True,
                 kp_variance: float = 0.01) -> None:
        super().__init__()
        self.num_tps, self.scale_factor, self.multi_mask, self.kp_variance = num_tps, scale_factor, multi_mask, kp_variance
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(channels=num_channels, scale=scale_factor)
        in_features = num_channels * (num_tps + 1) + num_tps * 5 + 1
        self.hourglass = Hourglass(block_expansion=block_expansion, in_features=in_features,
                                   max_features=max_features, num_blocks=num_blocks)
        widths = self.hourglass.out_channels
        self.maps = nn.Conv2d(widths[-1], num_tps + 1, kernel_size=7, padding=3)
        if multi_mask:
            self.up_nums = int(round(math.log2(1 / scale_factor)))
            self.occlusion_num = 4
            up_widths = [widths[-1] // 2 ** i for i in range(self.up_nums)]
            self.up = nn.ModuleList(UpBlock2d(in_channels=c, out_channels=c // 2) for c in up_widths)
            occ_in = [widths[-1 - i] for i in reversed(range(self.occlusion_num - self.up_nums))]
            occ_in += [widths[-1] // 2 ** (i + 1) for i in range(self.up_nums)]
        else:
            self.up_nums, self.occlusion_num = 0, 1
            occ_in = [widths[-1]]
        self.occlusion = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=7, padding=3) for c in occ_in)

    def downsample(self, source: torch.Tensor) -> torch.Tensor:
        """``[B,C,H,W] -> [B,C,h,w]``: the anti-aliased source the motion is estimated on (cacheable)."""
        if self.scale_factor == 1:
            return source
        with float32_region(source) as f32:
            return self.down(f32(source))

    def transformations(self, kp_driving: torch.Tensor, kp_source: torch.Tensor, height: int, width: int,
                        bg_param: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, K+1, h, w, 2]`` sampling grids: index 0 background (identity or ``bg_param`` affine),
        1..K the keypoint TPS (driving -> source)."""
        b = kp_driving.shape[0]
        groups = lambda kp: rearrange(kp, "b (k p) c -> b k p c", p=5)  # noqa: E731
        tps = tps_grid(tps_solve(groups(kp_driving), groups(kp_source)), height, width)
        ident = make_coordinate_grid(height, width, device=kp_driving.device, dtype=kp_driving.dtype)
        ident = repeat(ident, "h w c -> b 1 h w c", b=b)
        if bg_param is not None:
            ident = to_homogeneous(ident)
            ident = from_homogeneous(torch.matmul(bg_param.view(b, 1, 1, 1, 3, 3), ident.unsqueeze(-1)).squeeze(-1))
        return torch.cat([ident, tps], dim=1)

    def heads(self, levels: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Hourglass output maps (coarse to fine) -> ``(contribution logits [B,K+1,h,w], occlusion logits)``.

        With ``multi_mask`` the four occlusion logits are at 1/8, 1/4, 1/2, 1/1 of the frame: the last
        ``occlusion_num - up_nums`` hourglass levels give the coarse ones, ``up_nums`` up-sampling blocks after the
        finest level the rest. Without it, one logit map at the hourglass resolution.
        """
        logits = self.maps(levels[-1])
        if not self.multi_mask:
            return logits, [self.occlusion[0](levels[-1])]
        direct = self.occlusion_num - self.up_nums
        occ_logits = [self.occlusion[i](levels[i - direct]) for i in range(direct)]
        feat = levels[-1]
        for i, up in enumerate(self.up):
            feat = up(feat)
            occ_logits.append(self.occlusion[direct + i](feat))
        return logits, occ_logits

    def forward(self, source: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor, *,
                bg_param: torch.Tensor | None = None, dropout_p: float | None = None,
                generator: torch.Generator | None = None, source_small: torch.Tensor | None = None) -> DenseMotion:
        """Args:
            source: ``[1 or B, C, H, W]`` source image in ``[0,1]`` (ignored when ``source_small`` is given).
            kp_driving, kp_source: ``[B, 5K, 2]``.
            bg_param: optional ``[B, 3, 3]`` background affine.
            dropout_p: TPS dropout probability (training); ``None`` = plain softmax.
            source_small: the cached :meth:`downsample` of ``source``.
        """
        small = self.downsample(source) if source_small is None else source_small
        b = kp_driving.shape[0]
        if small.shape[0] == 1 and b > 1:
            small = small.expand(b, -1, -1, -1)
        h, w = small.shape[2:]
        with float32_region(small) as f32:   # heatmaps, TPS solve, grids and sampling stay in float32
            kp_driving, kp_source, small = f32(kp_driving), f32(kp_source), f32(small)
            heat = kp2gaussian(kp_driving, h, w, self.kp_variance) - kp2gaussian(kp_source, h, w, self.kp_variance)
            heat = torch.cat([heat.new_zeros(b, 1, h, w), heat], dim=1)
            grids = self.transformations(kp_driving, kp_source, h, w, None if bg_param is None else f32(bg_param))
            n = grids.shape[1]
            sources = rearrange(repeat(small, "b c h w -> b n c h w", n=n), "b n c h w -> (b n) c h w")
            deformed = F.grid_sample(sources, rearrange(grids, "b n h w c -> (b n) h w c"), align_corners=True)
            deformed = rearrange(deformed, "(b n) c h w -> b n c h w", b=b)
        x = torch.cat([heat, rearrange(deformed, "b n c h w -> b (n c) h w")], dim=1)
        levels = self.hourglass(into_trunk(x, self.hourglass))
        logits, occ_logits = self.heads(levels)
        with float32_region(logits) as f32:   # softmax, blending and sigmoids in float32
            logits = f32(logits)
            maps = F.softmax(logits, dim=1) if dropout_p is None else dropout_softmax(logits, dropout_p, generator)
            deformation = torch.einsum("bnhw,bnhwc->bhwc", maps, grids)
            occlusion = [torch.sigmoid(f32(o)) for o in occ_logits]
        return DenseMotion(deformation=deformation, contribution_maps=maps, occlusion=occlusion,
                           deformed_source=deformed)
