"""Inpainting network: encode the source, warp every level with the dense motion, mask occluded parts,
decode (Eq. 9-10)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from .precision import float32_region, into_trunk
from .dense_motion import DenseMotion

__all__ = ["Generated", "InpaintingNetwork", "deform"]


def deform(features: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``features [B,C,H,W]`` with ``deformation [B or 1,h,w,2]`` (absolute x, y).

    A deformation of another size is first resized (bilinear, ``align_corners=True``) to ``H x W``.
    Sampling: bilinear, zero padding, ``align_corners=True``. A batch-1 input is broadcast.
    """
    h, w = features.shape[2:]
    if deformation.shape[1:3] != (h, w):
        deformation = rearrange(deformation, "b h w c -> b c h w")
        deformation = F.interpolate(deformation, size=(h, w), mode="bilinear", align_corners=True)
        deformation = rearrange(deformation, "b c h w -> b h w c")
    b = max(features.shape[0], deformation.shape[0])
    features = features.expand(b, -1, -1, -1)
    deformation = deformation.expand(b, -1, -1, -1)
    return F.grid_sample(features, deformation, align_corners=True)


@dataclass
class Generated:
    """Output of :class:`InpaintingNetwork`.

    Attributes:
        prediction: ``[B, C, H, W]`` the animated frame in ``[0,1]``.
        deformed: ``[B, C, H, W]`` the source warped by the (upsampled) deformation.
        warped_encoder_maps: warped and masked source features, deepest first (for the warp loss);
            empty unless requested.
    """

    prediction: torch.Tensor
    deformed: torch.Tensor
    warped_encoder_maps: list[torch.Tensor]


class InpaintingNetwork(nn.Module):
    """``(source [1 or B,C,H,W], DenseMotion) -> Generated``; :meth:`encode` can be cached per source."""

    def __init__(self, *, num_channels: int = 3, block_expansion: int = 64, max_features: int = 512,
                 num_down_blocks: int = 3, multi_mask: bool = True) -> None:
        super().__init__()
        self.num_down_blocks, self.multi_mask = num_down_blocks, multi_mask
        self.first = SameBlock2d(in_channels=num_channels, out_channels=block_expansion, kernel_size=7, padding=3)
        downs, ups, res = [], [], []
        for i in range(num_down_blocks):
            cin = min(max_features, block_expansion * 2 ** i)
            cout = min(max_features, block_expansion * 2 ** (i + 1))
            downs.append(DownBlock2d(in_channels=cin, out_channels=cout))
            dec_in = cout if i == num_down_blocks - 1 else 2 * cout
            ups.append(UpBlock2d(in_channels=dec_in, out_channels=cin))
            res += [ResBlock2d(channels=dec_in), ResBlock2d(channels=dec_in)]
        self.down_blocks = nn.ModuleList(downs)
        self.up_blocks = nn.ModuleList(ups[::-1])
        self.resblock = nn.ModuleList(res[::-1])
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """``[B,C,H,W] -> [e_0 (H), e_1 (H/2), ..., e_n (H/2^n)]`` encoder features."""
        maps = [self.first(image)]
        for block in self.down_blocks:
            maps.append(block(maps[-1]))
        return maps

    def _mask(self, features: torch.Tensor, occlusion: list[torch.Tensor], level: int) -> torch.Tensor:
        mask = occlusion[level if self.multi_mask else 0]
        if mask.shape[2:] != features.shape[2:]:
            mask = F.interpolate(mask, size=features.shape[2:], mode="bilinear", align_corners=True)
        return features * mask

    def _warp_mask(self, features: torch.Tensor, deformation: torch.Tensor, occlusion: list[torch.Tensor],
                   level: int) -> torch.Tensor:
        """Warp ``features`` with the deformation and multiply by the level's occlusion mask (float32)."""
        with float32_region(features) as f32:
            return self._mask(deform(f32(features), f32(deformation)), [f32(o) for o in occlusion], level)

    def forward(self, source: torch.Tensor, motion: DenseMotion, *, encoded: list[torch.Tensor] | None = None,
                with_warped_maps: bool = False) -> Generated:
        """Args:
            source: ``[1 or B, C, H, W]`` in ``[0,1]``.
            motion: dense motion for ``B`` driving frames.
            encoded: cached :meth:`encode` of ``source``.
            with_warped_maps: also return the detached warped encoder maps (warp loss).

        Under autocast the convolutions run in half precision; warping, masking and the final blends
        run in float32 (see :mod:`tpsmm.core.networks.precision`).
        """
        enc = self.encode(source) if encoded is None else encoded
        d, occ = motion.deformation, motion.occlusion
        warped_maps: list[torch.Tensor] = []
        out = self._warp_mask(enc[-1], d, occ, 0)
        if with_warped_maps:
            warped_maps.append(self._warp_mask(enc[-1].detach(), d, [o.detach() for o in occ], 0))
        skip = out
        for i in range(self.num_down_blocks):
            out = into_trunk(out, self.resblock[2 * i])
            out = self.resblock[2 * i + 1](self.resblock[2 * i](out))
            out = self.up_blocks[i](out)
            skip = self._warp_mask(enc[-(i + 2)], d, occ, i + 1)
            if with_warped_maps:
                warped_maps.append(self._warp_mask(enc[-(i + 2)].detach(), d, [o.detach() for o in occ], i + 1))
            if i < self.num_down_blocks - 1:
                out = torch.cat([out, skip.to(out.dtype)], dim=1)
        with float32_region(out) as f32:
            deformed = deform(f32(source), f32(d))
            last = f32(occ[-1])
            if last.shape[2:] != out.shape[2:]:
                last = F.interpolate(last, size=out.shape[2:], mode="bilinear", align_corners=True)
            mixed = f32(out) * (1 - last) + skip
        final = self.final(into_trunk(mixed, self.final))
        with float32_region(final) as f32:
            prediction = torch.sigmoid(f32(final)) * (1 - last) + deformed * last
        return Generated(prediction=prediction, deformed=deformed, warped_encoder_maps=warped_maps)

    def get_encode(self, driving: torch.Tensor, occlusion: list[torch.Tensor]) -> list[torch.Tensor]:
        """Masked encoder features of the driving frame, finest first, all detached (warp loss target)."""
        out = self.first(driving)
        maps = [(out * occlusion[-1]).detach()]
        for i, block in enumerate(self.down_blocks):
            out = block(out.detach())
            maps.append((out * occlusion[len(self.down_blocks) - 1 - i]).detach())
        return maps
