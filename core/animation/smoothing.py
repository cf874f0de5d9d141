"""Causal temporal filters for driving keypoints (remove jitter without looking ahead).

Both filters are stateful and streaming: feed the keypoints of consecutive frames in chunks of any
size (``[b, N, 2]``) and the result equals filtering the whole clip at once. Keypoints are
``(x, y)`` in ``[-1, 1]``; computations are done in float32 on the keypoints' device.

* :class:`EMAFilter` — exponential moving average ``y_t = y_{t-1} + alpha (x_t - y_{t-1})``. Simple, but
  lags during fast movement.
* :class:`OneEuroFilter` — Casiez, Roussel & Vogel, "1€ Filter" (CHI 2012): an EMA whose cut-off
  frequency rises with the (filtered) speed, ``f_c = min_cutoff + beta |dx/dt|``; slow motion is
  smoothed strongly (jitter goes), fast motion passes with little lag.

:func:`make_filter` maps one ``strength`` in ``[0, 1)`` (0 = off) to either filter (the pipeline calls it).
"""
from __future__ import annotations

import math

import torch

from ..media.errors import FieldError

__all__ = ["EMAFilter", "OneEuroFilter", "check_smoothing", "make_filter", "SMOOTHING_KINDS"]

SMOOTHING_KINDS = ("off", "ema", "one-euro")


def _check_kp(kp: torch.Tensor) -> torch.Tensor:
    if not isinstance(kp, torch.Tensor) or kp.ndim != 3 or kp.shape[-1] != 2:
        raise ValueError(f"keypoints: expected [b, N, 2], got {getattr(kp, 'shape', type(kp).__name__)}")
    return kp.float()


class EMAFilter:
    """Exponential moving average over frames.

    Args:
        alpha: weight of the new frame in ``(0, 1]``; 1 = no smoothing, small = strong smoothing.
    """

    def __init__(self, *, alpha: float) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"EMAFilter: alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)
        self._last: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the past (the next frame passes unchanged)."""
        self._last = None

    def __call__(self, kp: torch.Tensor) -> torch.Tensor:
        """``[b, N, 2]`` consecutive frames -> ``[b, N, 2]`` float32 filtered keypoints (new tensor)."""
        kp = _check_kp(kp)
        out = torch.empty_like(kp)
        last = self._last
        for i in range(kp.shape[0]):
            last = kp[i] if last is None else last + self.alpha * (kp[i] - last)
            out[i] = last
        self._last = last
        return out


class OneEuroFilter:
    """One-Euro filter, applied independently to every coordinate.

    Args:
        fps: frame rate of the clip (the filter works in seconds).
        min_cutoff: cut-off frequency in Hz at zero speed (lower = smoother still poses).
        beta: speed coefficient (higher = less lag on fast motion); speed in normalised units / s.
        d_cutoff: cut-off frequency in Hz of the speed estimate.
    """

    def __init__(self, *, fps: float, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        if not fps > 0 or not min_cutoff > 0 or beta < 0 or not d_cutoff > 0:
            raise ValueError(f"OneEuroFilter: need fps, min_cutoff, d_cutoff > 0 and beta >= 0, got fps={fps}, "
                             f"min_cutoff={min_cutoff}, beta={beta}, d_cutoff={d_cutoff}")
        self.fps, self.min_cutoff, self.beta, self.d_cutoff = float(fps), float(min_cutoff), float(beta), float(d_cutoff)
        self._x: torch.Tensor | None = None
        self._dx: torch.Tensor | None = None

    def _alpha(self, cutoff):
        """Smoothing factor of a first-order low-pass at ``cutoff`` Hz (float or tensor) sampled at ``fps``."""
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.fps)

    def reset(self) -> None:
        """Forget the past (the next frame passes unchanged)."""
        self._x = self._dx = None

    def __call__(self, kp: torch.Tensor) -> torch.Tensor:
        """``[b, N, 2]`` consecutive frames -> ``[b, N, 2]`` float32 filtered keypoints (new tensor)."""
        kp = _check_kp(kp)
        out = torch.empty_like(kp)
        a_d = self._alpha(self.d_cutoff)
        for i in range(kp.shape[0]):
            x = kp[i]
            if self._x is None:
                self._x, self._dx = x.clone(), torch.zeros_like(x)
            else:
                speed = (x - self._x) * self.fps
                self._dx = self._dx + a_d * (speed - self._dx)
                cutoff = self.min_cutoff + self.beta * self._dx.abs()
                self._x = self._x + self._alpha(cutoff) * (x - self._x)
            out[i] = self._x
        return out


def check_smoothing(kind: str, strength: float) -> None:
    """The smoothing rule (``AnimationOptions`` and :func:`make_filter` call it): ``kind`` one of
    :data:`SMOOTHING_KINDS`, ``strength`` a finite number in ``[0, 1)``; :class:`FieldError` naming
    ``smoothing`` or ``smoothing_strength``."""
    if kind not in SMOOTHING_KINDS:
        raise FieldError(f"expected one of {', '.join(SMOOTHING_KINDS)}, got {kind!r}", field="smoothing")
    if (isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength)
            or not 0 <= strength < 1):
        raise FieldError(f"expected a value in [0, 1), got {strength!r}", field="smoothing_strength")


def make_filter(kind: str, strength: float, *, fps: float) -> EMAFilter | OneEuroFilter | None:
    """The causal keypoint filter of ``kind`` and ``strength`` (checked by :func:`check_smoothing`).

    Args:
        kind: ``"off"``, ``"ema"`` or ``"one-euro"``.
        strength: ``0 <= S < 1``; 0 returns ``None`` (no filter).
        fps: driving frame rate.

    Mapping: EMA ``alpha = 1 - S``. One-Euro ``min_cutoff = 10 ** (1 - 2 S)`` Hz (10 Hz at S = 0, 1 Hz at
    0.5, ~0.1 Hz near 1) with ``beta = 0.5`` and ``d_cutoff = 1`` Hz.
    """
    check_smoothing(kind, strength)
    if kind == "off" or strength == 0:
        return None
    if kind == "ema":
        return EMAFilter(alpha=1 - strength)
    return OneEuroFilter(fps=fps, min_cutoff=10 ** (1 - 2 * strength), beta=0.5, d_cutoff=1.0)
