"""AVD network (advanced video decomposition): keypoints with the source's identity and the driving pose."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

__all__ = ["AVDNetwork"]


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers += [nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class AVDNetwork(nn.Module):
    """``(kp_source, kp_driving)`` ``[B, 5K, 2]`` each -> ``[B, 5K, 2]`` keypoints.

    Identity is encoded from the source keypoints (``id_encoder``), pose from the driving ones
    (``pose_encoder``); ``decoder`` maps ``[pose, id]`` back to keypoints. BatchNorm layers: run in
    ``eval()`` at inference (batch statistics would garble a batch of one).
    """

    def __init__(self, *, num_tps: int, id_bottle_size: int = 128, pose_bottle_size: int = 128) -> None:
        super().__init__()
        n = 5 * num_tps * 2
        self.num_tps = num_tps
        self.id_encoder = _mlp([n, 256, 512, 1024, id_bottle_size])
        self.pose_encoder = _mlp([n, 256, 512, 1024, pose_bottle_size])
        self.decoder = _mlp([pose_bottle_size + id_bottle_size, 1024, 512, 256, n])

    def forward(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        pose = self.pose_encoder(rearrange(kp_driving, "b n c -> b (n c)"))
        identity = self.id_encoder(rearrange(kp_source, "b n c -> b (n c)"))
        return rearrange(self.decoder(torch.cat([pose, identity], dim=1)), "b (n c) -> b n c", c=2)
