"""Background motion predictor: a global affine transform of the background from a frame pair."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..geometry.lucas_kanade import MOTION_MODELS, estimate_global_motion
from .precision import float32_region
from .backbone import backbone_features, make_backbone

__all__ = ["BGMotionPredictor", "BGLucasKanade"]


class BGMotionPredictor(nn.Module):
    """``(source, driving)`` ``[B,3,H,W]`` each -> ``[B,3,3]`` homogeneous affine matrix.

    A ResNet-18 (``bg_encoder``; or the compact ``small`` backbone) on the 6-channel concatenation ``[source, driving]``; its ``fc``
    outputs the top two rows of the matrix (initialised to the identity), the third row is ``(0,0,1)``.
    The matrix maps driving-frame (x, y, 1) to source-frame coordinates.
    """

    def __init__(self, *, num_channels: int = 3, backbone: str = "resnet18", width: int = 16) -> None:
        super().__init__()
        self.bg_encoder = make_backbone(backbone, in_channels=2 * num_channels, out_features=6, width=width)
        with torch.no_grad():
            self.bg_encoder.fc.weight.zero_()
            self.bg_encoder.fc.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]))

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        if source.shape != driving.shape:
            raise ValueError(f"BGMotionPredictor: source {tuple(source.shape)} and driving "
                             f"{tuple(driving.shape)} must have the same shape")
        feats = backbone_features(self.bg_encoder, torch.cat([source, driving], dim=1))
        fc = self.bg_encoder.fc
        with float32_region(feats) as f32:   # the affine matrix in float32 under autocast
            rows = rearrange(F.linear(f32(feats), f32(fc.weight), f32(fc.bias)), "b (r c) -> b r c", r=2)
        last = torch.tensor([0.0, 0.0, 1.0], dtype=rows.dtype, device=rows.device).expand(rows.shape[0], 1, 3)
        return torch.cat([rows, last], dim=1)


class BGLucasKanade(nn.Module):
    """``(source, driving)`` ``[B,3,H,W]`` each -> ``[B,3,3]`` affine, measured instead of predicted.

    The ``bg_motion="lk"`` alternative to :class:`BGMotionPredictor`: a robust coarse-to-fine Lucas-Kanade fit of
    one ``model`` warp (``translation``, ``zoom``, ``similarity`` or ``affine``) to the frame pair, see
    :func:`tpsmm.core.geometry.lucas_kanade.estimate_global_motion`. Same output convention (driving (x, y, 1) -> source
    coordinates, third row ``(0, 0, 1)``, float32); no weights, so nothing of it is trained or saved.
    """

    def __init__(self, *, model: str = "similarity", iterations: int = 10, robust_scale: float = 0.5) -> None:
        super().__init__()
        if model not in MOTION_MODELS:
            raise ValueError(f"BGLucasKanade: model={model!r}, expected one of {sorted(MOTION_MODELS)}")
        self.model, self.iterations, self.robust_scale = model, iterations, robust_scale

    def extra_repr(self) -> str:
        return f"model={self.model!r}, iterations={self.iterations}, robust_scale={self.robust_scale}"

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        return estimate_global_motion(source, driving, model=self.model, iterations=self.iterations,
                                      robust_scale=self.robust_scale)
