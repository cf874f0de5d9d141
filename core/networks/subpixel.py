"""Nearest ×2 upsampling followed by a 3×3 convolution, computed on the low-resolution input (inference only).

``conv3x3(upsample_nearest_x2(x))`` reads every input pixel several times: each output pixel's 3×3 window
covers only a 2×2 block of distinct input pixels. Output pixel ``(2i+a, 2j+b)`` (phase ``a, b ∈ {0, 1}``)
is therefore a 2×2 convolution of ``x`` at rows ``i-1+a, i+a`` and columns ``j-1+b, j+b`` whose taps are
sums of the 3×3 taps that land on the same input pixel:

* phase 0 along an axis: taps ``(w[0], w[1] + w[2])`` at offsets ``(-1, 0)``;
* phase 1 along an axis: taps ``(w[0] + w[1], w[2])`` at offsets ``(0, +1)``.

:class:`SubpixelUpConv` runs the four phases as one 2×2 convolution with ``4·Cout`` output channels over
``x`` zero-padded by one pixel. Its result ``r`` is ``[H+1, W+1]``: phase 0 of output row ``2i`` is ``r[i]``,
phase 1 of row ``2i+1`` is ``r[i+1]``. With the phases stored in the order (1, 0) along each axis, a pixel
shuffle of ``r`` puts phase 1 of ``r[y]`` at row ``2y`` and phase 0 at ``2y+1``, so the output is that
``[2H+2, 2W+2]`` image cropped by one pixel on every side: one convolution, one shuffle, one crop. The zero
padding of the upsampled image is the zero padding of ``x``, so the result equals the original block's up
to float rounding (the summed taps), at 16 instead of 36 multiply-adds per output pixel and input channel.
It exports to standard ONNX ops (``Pad``, ``Conv``, ``DepthToSpace``, ``Slice``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["SubpixelUpConv", "SubpixelUpBlock2d", "phase_kernels", "subpixel_upsampling"]

_COMBINE = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]],     # phase 0: taps at offsets -1, 0
                         [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])    # phase 1: taps at offsets 0, +1
"""``[phase, 2 taps, 3 taps]``: which 3×3 taps sum into each 2×2 tap, per axis."""


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """``[Cout, Cin, 3, 3]`` kernel of the convolution after upsampling -> ``[Cout·4, Cin, 2, 2]`` phase kernels,
    output channels ordered ``(Cout, a, b)`` (row phase ``a``, column phase ``b``), in ``weight``'s dtype."""
    if weight.ndim != 4 or weight.shape[-2:] != (3, 3):
        raise ValueError(f"expected a [Cout, Cin, 3, 3] kernel, got {tuple(weight.shape)}")
    combine = _COMBINE.to(device=weight.device, dtype=torch.float64)
    k = torch.einsum("apk,oikl,bql->oabipq", combine, weight.double(), combine)
    return rearrange(k, "o a b i p q -> (o a b) i p q").to(weight.dtype)


class SubpixelUpConv(nn.Module):
    """``conv(F.interpolate(x, scale_factor=2))`` for a 3×3, padding-1, stride-1 ``conv``, without the upsampling.

    Args:
        conv: the ``nn.Conv2d`` (3×3, padding 1, stride 1, no dilation, one group) it replaces.

    Shapes: ``[B, Cin, H, W] -> [B, Cout, 2H, 2W]``.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not self.applies_to(conv):
            raise ValueError(f"SubpixelUpConv needs a 3x3, padding 1, stride 1, ungrouped Conv2d; got {conv}")
        self.out_channels = conv.out_channels
        kernels = rearrange(phase_kernels(conv.weight.detach()), "(o a b) i p q -> o a b i p q", a=2, b=2)
        kernels = kernels.flip(1, 2)                             # phase order (1, 0) per axis: see the module doc
        self.weight = nn.Parameter(rearrange(kernels, "o a b i p q -> (o a b) i p q").contiguous(),
                                   requires_grad=False)
        bias = None if conv.bias is None else conv.bias.detach().repeat_interleave(4)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    @staticmethod
    def applies_to(conv: nn.Module) -> bool:
        """Whether ``conv`` is a convolution this module can replace."""
        return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
                and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
                and conv.padding_mode == "zeros")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        phases = F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias)               # [B, 4·Cout, H+1, W+1]
        return F.pixel_shuffle(phases, 2)[..., 1:2 * h + 1, 1:2 * w + 1]


class SubpixelUpBlock2d(nn.Module):
    """:class:`~tpsmm.core.networks.blocks.UpBlock2d` with its upsampling and convolution as one
    :class:`SubpixelUpConv`: ``[B,Cin,H,W] -> [B,Cout,2H,2W]``, the same norm and ReLU after."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.up_conv, self.norm = SubpixelUpConv(block.conv), block.norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.up_conv(x)))


def subpixel_upsampling(module: nn.Module) -> nn.Module:
    """Replace, in place, every ``UpBlock2d`` of ``module`` whose convolution qualifies by a
    :class:`SubpixelUpBlock2d`; returns ``module``. For inference copies: the new blocks hold frozen weights."""
    from .blocks import UpBlock2d

    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, UpBlock2d) and SubpixelUpConv.applies_to(child.conv):
                setattr(parent, name, SubpixelUpBlock2d(child))
    return module
