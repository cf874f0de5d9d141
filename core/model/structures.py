"""Typed values passed between the animation steps (and between ComfyUI nodes)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Keypoints", "Motion", "MODES"]

MODES = ("standard", "relative", "avd")


@dataclass(frozen=True)
class Keypoints:
    """Keypoints of a batch of frames.

    Attributes:
        value: ``[B, 5K, 2]`` float, (x, y) in ``[-1, 1]`` (x = columns, ``align_corners=True``);
            keypoints ``5k..5k+4`` are the control points of TPS ``k``.
        model_id: fingerprint of the model that detected them (keypoints only mean something to it).
        frames: optional ``[B, C, S, S]`` model-size frames they were detected on (kept by reference,
            used by visualisation and generation).
    """

    value: torch.Tensor
    model_id: str
    frames: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.value.ndim != 3 or self.value.shape[-1] != 2:
            raise ValueError(f"Keypoints.value must be [B, N, 2], got {tuple(self.value.shape)}")

    def __len__(self) -> int:
        return self.value.shape[0]


@dataclass(frozen=True)
class Motion:
    """Motion to apply to one source image, one entry per output frame.

    Attributes:
        kp_source: ``[1, 5K, 2]`` keypoints of the source image.
        kp_driving: ``[T, 5K, 2]`` where the source keypoints should move in each output frame
            (already transferred by ``mode``: absolute, relative or AVD).
        mode: one of :data:`MODES`.
        model_id: fingerprint of the model the keypoints belong to.
        source: optional ``[1, C, S, S]`` model-size source frame.
    """

    kp_source: torch.Tensor
    kp_driving: torch.Tensor
    mode: str
    model_id: str
    source: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.kp_source.ndim != 3 or self.kp_source.shape[0] != 1:
            raise ValueError(f"Motion.kp_source must be [1, N, 2], got {tuple(self.kp_source.shape)}")
        if self.kp_driving.ndim != 3 or self.kp_driving.shape[1:] != self.kp_source.shape[1:]:
            raise ValueError(f"Motion.kp_driving must be [T, {self.kp_source.shape[1]}, 2], "
                             f"got {tuple(self.kp_driving.shape)}")
        if self.mode not in MODES:
            raise ValueError(f"Motion.mode must be one of {MODES}, got {self.mode!r}")

    def __len__(self) -> int:
        return self.kp_driving.shape[0]
