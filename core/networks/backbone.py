"""Image encoders for the keypoint detector and background predictor.

``resnet18`` is torchvision's ResNet-18 (random init), as in the release: its state-dict names are
what official checkpoints hold. ``small`` is a compact residual network with the same interface
(``conv1``, ``fc``, global pooling) for models that must stay small, e.g. the bundled demo model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

__all__ = ["BACKBONES", "SmallResNet", "make_backbone", "backbone_features"]

BACKBONES = ("resnet18", "small")


class _Stage(nn.Module):
    """Strided conv + BN + ReLU, then a residual conv pair: ``[B,Cin,H,W] -> [B,Cout,H/2,W/2]``."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.down(x)))
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class SmallResNet(nn.Module):
    """Compact ResNet: stem (``conv1`` 5x5/2), four stages doubling ``width``, global average pool, ``fc``.

    ``[B, in_channels, H, W] -> [B, out_features]``.
    """

    def __init__(self, *, in_channels: int = 3, width: int = 16, out_features: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 5, stride=2, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        widths = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        self.stages = nn.Sequential(*(_Stage(in_channels=a, out_channels=b) for a, b in zip(widths[:-1], widths[1:])))
        self.fc = nn.Linear(widths[-1], out_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B,C,H,W] -> [B, 8 width]`` pooled features (everything but ``fc``)."""
        return self.stages(F.relu(self.bn1(self.conv1(x)))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def backbone_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled features of a :func:`make_backbone` encoder, i.e. its forward without ``fc``."""
    if isinstance(net, SmallResNet):
        return net.features(x)
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return torch.flatten(net.avgpool(x), 1)


def make_backbone(name: str, *, in_channels: int, out_features: int, width: int = 16) -> nn.Module:
    """Build an encoder ``[B, in_channels, H, W] -> [B, out_features]`` with ``conv1`` and ``fc`` attributes."""
    if name == "resnet18":
        net = resnet18(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        net.fc = nn.Linear(net.fc.in_features, out_features)
        return net
    if name == "small":
        return SmallResNet(in_channels=in_channels, width=width, out_features=out_features)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
