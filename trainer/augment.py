"""Training-clip augmentation on tensors, following the release's ``augmentation.py``.

A clip is a float ``[T, 3, H, W]`` tensor in ``[0, 1]`` (for training, ``T = 2``: source and driving).
:func:`augment_clip` applies, in the released order and only when configured:

1. **flip** — with p 0.5 reverse time (source and driving swap) and skip the horizontal flip; otherwise
   with p 0.5 flip every frame left-right. So with both enabled the horizontal flip happens with p 0.25
   and never together with the time flip (as released). A random number is drawn for the time flip
   even when it is disabled, as in the release, so the horizontal flip alone has p 0.5.
2. **resize** — one factor ``s ~ U(ratio)`` per clip, new size ``int(H*s) x int(W*s)``; nearest
   resampling, with a Gaussian pre-blur of ``sigma = (1/s - 1)/2`` when shrinking (skimage's
   ``resize(order=0, anti_aliasing=True)``).
3. **crop** — edge-pad to at least ``crop_size`` then a random ``crop_size`` crop, same window for
   all frames (the release swaps h/w in its bounds test; here both axes are handled correctly).
4. **colour jitter** — brightness/contrast/saturation factors ``~ U(max(0, 1-v), 1+v)`` and hue
   ``~ U(-v, v)``, drawn once per clip, applied in one random order (same for all frames) with
   ``torchvision.transforms.v2.functional``. Unlike the release (uint8 → PIL per step) the arithmetic is
   in float, without 8-bit rounding between steps.

All randomness comes from the ``torch.Generator`` passed in, so a seed gives the same clip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

if TYPE_CHECKING:
    from ..core.model.config import DatasetConfig

__all__ = ["AugmentConfig", "augment_clip", "JITTER_KEYS"]

JITTER_KEYS = ("brightness", "contrast", "saturation", "hue")
"""Colour-jitter strengths, in the order their factors are drawn (as released)."""


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations to apply (reference ``augmentation_params``).

    Attributes:
        horizontal_flip: allow the left-right flip of all frames.
        time_flip: allow reversing the frame order.
        jitter: colour-jitter strengths ``{"brightness", "contrast", "saturation", "hue"}`` (missing or 0 =
            off; hue at most 0.5), or ``None`` for no jitter.
        crop_size: random crop to ``crop_size x crop_size`` (after edge padding when smaller), or ``None``.
        resize_ratio: ``(low, high)`` random rescale range, or ``None``. Needs ``crop_size`` so that all
            clips of a batch end up with one size.
    """

    horizontal_flip: bool = True
    time_flip: bool = True
    jitter: dict | None = None
    crop_size: int | None = None
    resize_ratio: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.jitter is not None:
            if not isinstance(self.jitter, dict):
                raise ValueError(f"augment jitter: expected a dict of strengths, got {type(self.jitter).__name__}")
            unknown = sorted(set(self.jitter) - set(JITTER_KEYS))
            if unknown:
                raise ValueError(f"augment jitter: unknown key(s) {', '.join(map(str, unknown))}; "
                                 f"allowed: {', '.join(JITTER_KEYS)}")
            for key, value in self.jitter.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                        or value < 0:
                    raise ValueError(f"augment jitter.{key}: expected a number >= 0, got {value!r}")
            if self.jitter.get("hue", 0) > 0.5:
                raise ValueError(f"augment jitter.hue: must be at most 0.5, got {self.jitter['hue']!r}")
        if self.crop_size is not None and (isinstance(self.crop_size, bool) or not isinstance(self.crop_size, int)
                                           or self.crop_size < 1):
            raise ValueError(f"augment crop_size: expected a positive int or None, got {self.crop_size!r}")
        if self.resize_ratio is not None:
            r = self.resize_ratio
            if (not isinstance(r, (tuple, list)) or len(r) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in r)
                    or r[0] > r[1]):
                raise ValueError(f"augment resize_ratio: expected (low, high) with 0 < low <= high, got {r!r}")
            if self.crop_size is None:
                raise ValueError("augment resize_ratio needs crop_size (clips of a batch must share one size)")

    @classmethod
    def from_dataset_config(cls, cfg: "DatasetConfig") -> "AugmentConfig":
        """The augmentations of a :class:`~tpsmm.core.model.config.DatasetConfig`."""
        return cls(horizontal_flip=bool(cfg.horizontal_flip), time_flip=bool(cfg.time_flip),
                   jitter=dict(cfg.jitter) if cfg.jitter else None, crop_size=cfg.crop_size,
                   resize_ratio=tuple(cfg.resize_ratio) if cfg.resize_ratio is not None else None)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _randint(generator: torch.Generator, high_inclusive: int) -> int:
    return int(torch.randint(0, high_inclusive + 1, (), generator=generator))


def _flip(frames: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    if float(torch.rand((), generator=generator)) < 0.5 and cfg.time_flip:
        return frames.flip(0)
    if float(torch.rand((), generator=generator)) < 0.5 and cfg.horizontal_flip:
        return frames.flip(-1)
    return frames


def _resize(frames: torch.Tensor, ratio: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    s = _uniform(generator, float(ratio[0]), float(ratio[1]))
    h, w = frames.shape[-2:]
    new_h, new_w = max(1, int(h * s)), max(1, int(w * s))
    if (new_h, new_w) == (h, w):
        return frames
    if s < 1:  # anti-aliasing before nearest sampling, as skimage does when shrinking
        sigma = (1.0 / s - 1.0) / 2.0
        radius = max(1, int(4.0 * sigma + 0.5))
        frames = TF.gaussian_blur(frames, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])
    return F.interpolate(frames, size=(new_h, new_w), mode="nearest-exact")


def _crop(frames: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    h, w = frames.shape[-2:]
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if pad_h or pad_w:
        frames = F.pad(frames, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2), mode="replicate")
        h, w = frames.shape[-2:]
    x0 = 0 if w == size else _randint(generator, w - size)
    y0 = 0 if h == size else _randint(generator, h - size)
    return frames[..., y0:y0 + size, x0:x0 + size]


def _jitter(frames: torch.Tensor, jitter: dict, generator: torch.Generator) -> torch.Tensor:
    steps = []
    for key in JITTER_KEYS:
        v = float(jitter.get(key, 0) or 0)
        if v <= 0:
            continue
        if key == "hue":
            steps.append((TF.adjust_hue, _uniform(generator, -v, v)))
        else:
            fn = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
                  "saturation": TF.adjust_saturation}[key]
            steps.append((fn, _uniform(generator, max(0.0, 1.0 - v), 1.0 + v)))
    for i in torch.randperm(len(steps), generator=generator).tolist():
        fn, factor = steps[i]
        frames = fn(frames, factor)
    return frames


def augment_clip(frames: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augment one clip (see the module docstring for the steps and their order).

    Args:
        frames: float ``[T, 3, H, W]`` in ``[0, 1]``.
        cfg: the augmentations to apply.
        generator: CPU generator supplying all random draws.

    Returns:
        float ``[T, 3, H', W']`` in ``[0, 1]``, ``H' = W' = crop_size`` when cropping, else ``H, W``
        (``resize_ratio`` is only allowed together with ``crop_size``).
    """
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] < 1:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames: expected a [T,3,H,W] tensor, got {shape}")
    if not frames.is_floating_point():
        raise ValueError(f"frames: expected float values in [0,1], got dtype {frames.dtype}")
    if not isinstance(cfg, AugmentConfig):
        raise ValueError(f"cfg: expected an AugmentConfig, got {type(cfg).__name__}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    if cfg.horizontal_flip or cfg.time_flip:
        frames = _flip(frames, cfg, generator)
    if cfg.resize_ratio is not None:
        frames = _resize(frames, cfg.resize_ratio, generator)
    if cfg.crop_size is not None:
        frames = _crop(frames, cfg.crop_size, generator)
    if cfg.jitter:
        frames = _jitter(frames, cfg.jitter, generator)
    return frames.clamp(0, 1).contiguous()
