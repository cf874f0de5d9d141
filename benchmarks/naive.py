"""The release's frame loop, rebuilt from our modules: the baseline every speed figure is measured against.

Batch 1, float32, eager torch: for each driving frame, its keypoints, relative motion, dense motion on the raw
source and the inpainting network with the source re-encoded (downscale + encoder), then one device→host copy.
"""
from __future__ import annotations

import torch

__all__ = ["naive_loop"]


@torch.no_grad()
def naive_loop(model, source: torch.Tensor, driving: torch.Tensor) -> list[torch.Tensor]:
    """Render ``driving`` ``[T,3,S,S]`` from ``source`` ``[1,3,S,S]`` (model layout, values in [0, 1]) the way the
    release's demo does, in relative mode (the first driving frame is the reference).

    Returns:
        ``T`` CPU tensors ``[1,3,S,S]``.
    """
    from tpsmm.core.animation.motion import relative_keypoints

    kp_source = model.kp_detector(source)
    kp_initial = model.kp_detector(driving[:1])
    frames = []
    for i in range(driving.shape[0]):
        kp_norm = relative_keypoints(kp_source, model.kp_detector(driving[i:i + 1]), kp_initial)
        motion = model.dense_motion_network(source, kp_norm, kp_source)
        frames.append(model.inpainting_network(source, motion).prediction.cpu())
    return frames
