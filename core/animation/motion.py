"""Motion transfer: where the source keypoints go for each driving frame (standard / relative / avd).

* ``standard``: the driving keypoints themselves.
* ``relative``: ``kp_source + (kp_driving - kp_reference) * strength * sqrt(area_source / area_reference)``
  where areas are those of the convex hulls of the keypoint sets (the release's scale adaptation).
* ``avd``: the AVD network's keypoints (source identity, driving pose).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..model.container import ModelError
from ..model.structures import MODES

__all__ = ["convex_hull_area", "relative_keypoints", "layout_distance", "best_reference_frame",
           "reference_area", "require_avd_network", "MotionTransfer"]


def require_avd_network(avd_network):
    """The AVD capability rule, raised from here alone: mode ``avd`` needs the model's AVD network.

    Returns ``avd_network``; :class:`~tpsmm.core.model.container.ModelError` naming the field ``mode`` when it
    is ``None`` (:class:`~tpsmm.core.animation.pipeline.AnimationPipeline` checks it when it is built).
    """
    if avd_network is None:
        raise ModelError("this checkpoint has no AVD network (train one with `tpsmm train-avd`, or use mode "
                         "'relative')", field="mode", value="avd")
    return avd_network


def convex_hull_area(points) -> float:
    """Area of the convex hull of 2-D points (``[N, 2]`` tensor or array), computed in float64.

    Degenerate sets (fewer than 3 non-collinear points) have area 0.
    """
    p = np.asarray(points.detach().double().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"convex_hull_area: points must be [N, 2], got {p.shape}")
    pts = sorted(set(map(tuple, p.tolist())))
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    upper: list = []
    for q in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], q) <= 0:
            lower.pop()
        lower.append(q)
    for q in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], q) <= 0:
            upper.pop()
        upper.append(q)
    hull = lower[:-1] + upper[:-1]
    area = 0.0
    for i in range(len(hull)):
        x1, y1 = hull[i]
        x2, y2 = hull[(i + 1) % len(hull)]
        area += x1 * y2 - x2 * y1
    return abs(area) / 2


def reference_area(kp_reference: torch.Tensor) -> float:
    """Hull area of the reference keypoints ``[1, N, 2]``; ``ValueError`` when it is 0 (relative motion
    would divide by it)."""
    area = convex_hull_area(kp_reference[0])
    if area <= 0:
        raise ValueError("relative motion: the reference frame's keypoints are degenerate (zero hull area); "
                         "use mode 'standard' or another reference frame")
    return area


def relative_keypoints(kp_source: torch.Tensor, kp_driving: torch.Tensor, kp_reference: torch.Tensor, *,
                       strength: float = 1.0) -> torch.Tensor:
    """Relative motion transfer.

    Args:
        kp_source: ``[1, N, 2]`` source keypoints.
        kp_driving: ``[T, N, 2]`` driving keypoints.
        kp_reference: ``[1, N, 2]`` keypoints of the driving frame that corresponds to the source pose.
        strength: multiplier of the movement (1 = as released).

    Returns:
        ``[T, N, 2]`` = ``kp_source + (kp_driving - kp_reference) * strength * sqrt(A_src) / sqrt(A_ref)``.
    """
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise ValueError(f"strength: expected a finite number, got {strength!r}")
    a_ref = reference_area(kp_reference)
    scale = math.sqrt(convex_hull_area(kp_source[0])) / math.sqrt(a_ref)
    diff = kp_driving - kp_reference
    diff = diff * scale
    if strength != 1.0:
        diff = diff * strength
    return diff + kp_source


def _normalise_layout(kp: torch.Tensor) -> torch.Tensor:
    """``[..., N, 2]``: remove the mean position and divide by sqrt of the hull area (per set)."""
    centred = kp - kp.mean(dim=-2, keepdim=True)
    flat = centred.reshape(-1, *kp.shape[-2:])
    scales = torch.tensor([math.sqrt(max(convex_hull_area(s), 1e-12)) for s in flat], dtype=kp.dtype,
                          device=kp.device)
    return (flat / scales[:, None, None]).reshape(kp.shape)


def layout_distance(kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
    """``[1,N,2]`` vs ``[T,N,2]`` -> ``[T]`` squared distance between position- and scale-normalised layouts."""
    return ((_normalise_layout(kp_driving) - _normalise_layout(kp_source)) ** 2).sum(dim=(-1, -2))


def best_reference_frame(kp_source: torch.Tensor, kp_driving: torch.Tensor) -> int:
    """Index of the driving frame whose keypoint layout is closest to the source's (no face detector needed)."""
    return int(torch.argmin(layout_distance(kp_source, kp_driving)).item())


class MotionTransfer:
    """Streaming motion transfer: driving keypoints, chunk by chunk, -> where the source keypoints go.

    Chunking does not change the result (every mode is per frame once the reference is fixed).

    Args:
        mode: ``standard`` | ``relative`` | ``avd``.
        kp_source: ``[1, N, 2]`` source keypoints.
        kp_reference: relative mode: ``[1, N, 2]`` keypoints of the driving frame that matches the
            source pose (e.g. the first frame, or :func:`best_reference_frame`'s).
        strength: relative mode movement multiplier.
        avd_network: avd mode: the model's AVD network (run in eval mode).
    """

    def __init__(self, *, mode: str, kp_source: torch.Tensor, kp_reference: torch.Tensor | None = None,
                 strength: float = 1.0, avd_network=None) -> None:
        if mode not in MODES:
            raise ModelError(f"expected one of {', '.join(MODES)}, got {mode!r}", field="mode")
        if kp_source.ndim != 3 or kp_source.shape[0] != 1:
            raise ValueError(f"kp_source: expected [1, N, 2], got {tuple(kp_source.shape)}")
        if mode == "relative":
            if kp_reference is None or tuple(kp_reference.shape) != tuple(kp_source.shape):
                raise ValueError("relative mode needs kp_reference [1, N, 2] (the reference driving frame's keypoints)")
            reference_area(kp_reference)
        if mode == "avd":
            require_avd_network(avd_network)
        self.mode, self.kp_source, self.kp_reference = mode, kp_source, kp_reference
        self.strength, self.avd_network = float(strength), avd_network

    @torch.no_grad()
    def __call__(self, kp_driving: torch.Tensor) -> torch.Tensor:
        """``[b, N, 2]`` driving keypoints -> ``[b, N, 2]`` transferred keypoints (source's device/dtype)."""
        drv = kp_driving.to(device=self.kp_source.device, dtype=self.kp_source.dtype)
        if self.mode == "standard":
            return drv
        if self.mode == "relative":
            ref = self.kp_reference.to(device=drv.device, dtype=drv.dtype)
            return relative_keypoints(self.kp_source, drv, ref, strength=self.strength)
        net = self.avd_network
        param = next(net.parameters())
        was_training = net.training
        net.eval()
        try:
            out = net(self.kp_source.to(param).expand(drv.shape[0], -1, -1), drv.to(param))
        finally:
            net.train(was_training)
        return out.to(drv.dtype)
