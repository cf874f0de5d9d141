"""Keypoint detector: ResNet-18 regressing ``5 K`` keypoints (K TPS groups of 5)."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torchvision.models import resnet18

__all__ = ["KPDetector"]


class KPDetector(nn.Module):
    """``[B,3,H,W]`` image in ``[0,1]`` -> ``[B, 5K, 2]`` keypoints (x, y) in ``(-1, 1)``.

    A randomly initialised torchvision ResNet-18 (``fg_encoder``) whose ``fc`` outputs ``10 K`` logits;
    ``sigmoid * 2 - 1`` maps them to coordinates, interleaved x, y per keypoint. Any input size works
    (adaptive pooling). Keypoint ``5k + i`` is control point ``i`` of TPS group ``k``.
    """

    def __init__(self, *, num_tps: int, num_channels: int = 3) -> None:
        super().__init__()
        self.num_tps = num_tps
        self.fg_encoder = resnet18(weights=None)
        if num_channels != 3:
            self.fg_encoder.conv1 = nn.Conv2d(num_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.fg_encoder.fc = nn.Linear(self.fg_encoder.fc.in_features, num_tps * 5 * 2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.fg_encoder(image)
        return rearrange(torch.sigmoid(logits) * 2 - 1, "b (n c) -> b n c", c=2)
