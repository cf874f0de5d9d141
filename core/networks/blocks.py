"""Convolutional building blocks shared by the dense motion and inpainting networks.

Parameter names (``conv``, ``norm``, ``conv1`` …) follow the release so official state dicts load
unchanged. Normalisation is ``InstanceNorm2d(affine=True)`` (no running statistics) throughout.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResBlock2d", "UpBlock2d", "DownBlock2d", "SameBlock2d", "Encoder", "Decoder", "Hourglass",
           "AntiAliasInterpolation2d"]


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True)


class ResBlock2d(nn.Module):
    """Pre-activation residual block: ``x + conv2(relu(norm2(conv1(relu(norm1(x))))))``; ``[B,C,H,W]`` in and out."""

    def __init__(self, *, channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=padding)
        self.norm1 = _norm(channels)
        self.norm2 = _norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class UpBlock2d(nn.Module):
    """Nearest x2 upsampling, conv, norm, ReLU: ``[B,Cin,H,W] -> [B,Cout,2H,2W]``."""

    def __init__(self, *, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)
        self.norm = _norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2))))


class DownBlock2d(nn.Module):
    """Conv, norm, ReLU, 2x2 average pooling: ``[B,Cin,H,W] -> [B,Cout,H/2,W/2]``."""

    def __init__(self, *, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)
        self.norm = _norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class SameBlock2d(nn.Module):
    """Conv, norm, ReLU at constant resolution: ``[B,Cin,H,W] -> [B,Cout,H,W]``."""

    def __init__(self, *, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)
        self.norm = _norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * 2 ** level)


class Encoder(nn.Module):
    """Hourglass encoder: returns ``[x, d_0, ..., d_{n-1}]``, each level halving the resolution."""

    def __init__(self, *, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(in_channels=in_features if i == 0 else _width(block_expansion, max_features, i),
                        out_channels=_width(block_expansion, max_features, i + 1))
            for i in range(num_blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder: after each up block concatenates ``[up_output, skip]`` along channels.

    ``out_channels`` lists the channel count of every concatenated level (deepest first).
    """

    def __init__(self, *, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks, self.out_channels = [], []
        for i in reversed(range(num_blocks)):
            cin = (1 if i == num_blocks - 1 else 2) * _width(block_expansion, max_features, i + 1)
            self.out_channels.append(cin)
            blocks.append(UpBlock2d(in_channels=cin, out_channels=_width(block_expansion, max_features, i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_channels.append(block_expansion + in_features)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        skips = list(features)
        out = skips.pop()
        outs = []
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
            outs.append(out)
        return outs


class Hourglass(nn.Module):
    """U-Net style encoder/decoder. ``forward`` returns every decoder level (coarse to fine)."""

    def __init__(self, *, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        kw = dict(block_expansion=block_expansion, in_features=in_features, num_blocks=num_blocks,
                  max_features=max_features)
        self.encoder = Encoder(**kw)
        self.decoder = Decoder(**kw)
        self.out_channels = self.decoder.out_channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.decoder(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then subsampling by ``scale`` (a power of 1/2), as the release does it.

    sigma = (1/scale - 1) / 2, kernel size 2*round(4 sigma)+1, **zero** padding (darkens the border,
    kept for parity), then every ``1/scale``-th pixel. The kernel is the buffer ``weight``
    ``[C, 1, k, k]`` that official checkpoints store. ``[B,C,H,W] -> [B,C,H*scale,W*scale]``.
    """

    def __init__(self, *, channels: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.step = int(round(1 / scale))
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.pad = size // 2
        t = torch.arange(size, dtype=torch.float32)
        g = torch.exp(-(t - (size - 1) / 2) ** 2 / (2 * sigma ** 2)) if sigma > 0 else torch.ones(size)
        kernel = g[:, None] * g[None, :]
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).clone())
        self.groups = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x
        out = F.conv2d(F.pad(x, (self.pad,) * 4), self.weight.to(x.dtype), groups=self.groups)
        return out[:, :, ::self.step, ::self.step]
