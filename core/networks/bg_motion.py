"""Background motion predictor: a global affine transform of the background from a frame pair."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torchvision.models import resnet18

__all__ = ["BGMotionPredictor"]


class BGMotionPredictor(nn.Module):
    """``(source, driving)`` ``[B,3,H,W]`` each -> ``[B,3,3]`` homogeneous affine matrix.

    A ResNet-18 (``bg_encoder``) on the 6-channel concatenation ``[source, driving]``; its ``fc``
    outputs the top two rows of the matrix (initialised to the identity), the third row is ``(0,0,1)``.
    The matrix maps driving-frame (x, y, 1) to source-frame coordinates.
    """

    def __init__(self, *, num_channels: int = 3) -> None:
        super().__init__()
        self.bg_encoder = resnet18(weights=None)
        self.bg_encoder.conv1 = nn.Conv2d(2 * num_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bg_encoder.fc = nn.Linear(self.bg_encoder.fc.in_features, 6)
        with torch.no_grad():
            self.bg_encoder.fc.weight.zero_()
            self.bg_encoder.fc.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]))

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        if source.shape != driving.shape:
            raise ValueError(f"BGMotionPredictor: source {tuple(source.shape)} and driving "
                             f"{tuple(driving.shape)} must have the same shape")
        rows = rearrange(self.bg_encoder(torch.cat([source, driving], dim=1)), "b (r c) -> b r c", r=2)
        last = torch.tensor([0.0, 0.0, 1.0], dtype=rows.dtype, device=rows.device).expand(rows.shape[0], 1, 3)
        return torch.cat([rows, last], dim=1)
