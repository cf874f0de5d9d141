"""Batched animation engine with per-source caching.

The release re-encodes the source for every driving frame. Here everything that depends only on the
source — its keypoints, its anti-aliased downscale used by the dense motion network and the inpainting
encoder's feature maps — is computed once per clip (:class:`SourceCache`), and driving frames are
processed in batches. Results equal the frame-by-frame path (float32) up to float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from .images import to_user_layout

__all__ = ["SourceCache", "RenderedBatch", "AnimationEngine"]


@dataclass
class SourceCache:
    """Source-only tensors reused for every frame.

    Attributes:
        frame: ``[1,3,S,S]`` source in model layout.
        small: ``[1,3,h,w]`` anti-aliased downscale (dense motion input).
        encoded: inpainting encoder maps, finest first.
    """

    frame: torch.Tensor
    small: torch.Tensor
    encoded: list[torch.Tensor]


@dataclass
class RenderedBatch:
    """One batch of output.

    Attributes:
        start: index of the first frame of the batch in the clip.
        frames: ``[b,S,S,3]`` float32 CPU in ``[0,1]``.
        occlusion: ``[b,S,S]`` finest occlusion mask (1 = warped source visible) or ``None``.
        deformation: ``[b,h,w,2]`` dense motion (source coordinates) or ``None``.
    """

    start: int
    frames: torch.Tensor
    occlusion: torch.Tensor | None = None
    deformation: torch.Tensor | None = None


class AnimationEngine:
    """Renders a source image moved to a sequence of keypoint sets, ``batch_size`` frames at a time."""

    def __init__(self, model, *, batch_size: int = 8) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size

    @torch.no_grad()
    def cache_source(self, source: torch.Tensor) -> SourceCache:
        """``[1,3,S,S]`` model-layout source -> :class:`SourceCache`."""
        m = self.model
        return SourceCache(frame=source, small=m.dense_motion_network.downsample(source),
                           encoded=m.inpainting_network.encode(source))

    @torch.no_grad()
    def render_batch(self, cache: SourceCache, kp_source: torch.Tensor, kp_driving: torch.Tensor):
        """``kp_driving [b,5K,2]`` -> ``(Generated, DenseMotion)`` for one batch, using the cache."""
        m = self.model
        motion = m.dense_motion_network(cache.frame, kp_driving, kp_source.expand(kp_driving.shape[0], -1, -1),
                                        source_small=cache.small)
        return m.inpainting_network(cache.frame, motion, encoded=cache.encoded), motion

    @torch.no_grad()
    def render(self, source: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor, *,
               with_occlusion: bool = False, with_deformation: bool = False) -> Iterator[RenderedBatch]:
        """Yield :class:`RenderedBatch` es for ``kp_driving [T,5K,2]``.

        Args:
            source: model-layout ``[1,3,S,S]`` source (see ``TPSMM.prepare``).
            kp_source: ``[1,5K,2]``.
        """
        m = self.model
        cache = self.cache_source(source.to(device=m.device, dtype=m.dtype))
        kp_source = kp_source.to(device=m.device, dtype=m.dtype)
        for start in range(0, kp_driving.shape[0], self.batch_size):
            kp = kp_driving[start:start + self.batch_size].to(device=m.device, dtype=m.dtype)
            gen, motion = self.render_batch(cache, kp_source, kp)
            yield RenderedBatch(
                start=start, frames=to_user_layout(gen.prediction),
                occlusion=motion.occlusion[-1][:, 0].float().cpu() if with_occlusion else None,
                deformation=motion.deformation.float().cpu() if with_deformation else None)
