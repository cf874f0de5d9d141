"""Keypoint detector: ResNet-18 regressing ``5 K`` keypoints (K TPS groups of 5)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .precision import float32_region
from .backbone import backbone_features, make_backbone

__all__ = ["KPDetector"]


class KPDetector(nn.Module):
    """``[B,3,H,W]`` image in ``[0,1]`` -> ``[B, 5K, 2]`` keypoints (x, y) in ``(-1, 1)``.

    An encoder (``fg_encoder``: torchvision ResNet-18 as released, or the compact ``small`` backbone)
    whose ``fc`` outputs ``10 K`` logits;
    ``sigmoid * 2 - 1`` maps them to coordinates, interleaved x, y per keypoint. Any input size works
    (adaptive pooling). Keypoint ``5k + i`` is control point ``i`` of TPS group ``k``.
    """

    def __init__(self, *, num_tps: int, num_channels: int = 3, backbone: str = "resnet18", width: int = 16) -> None:
        super().__init__()
        self.num_tps = num_tps
        self.fg_encoder = make_backbone(backbone, in_channels=num_channels, out_features=num_tps * 5 * 2, width=width)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = backbone_features(self.fg_encoder, image)
        fc = self.fg_encoder.fc
        with float32_region(feats) as f32:   # regression head in float32 under autocast
            logits = F.linear(f32(feats), f32(fc.weight), f32(fc.bias))
            return rearrange(torch.sigmoid(logits) * 2 - 1, "b (n c) -> b n c", c=2)
