"""Inputs of ``benchmarks/animate.py``: a generated source and driving clip, and random-weight checkpoints.

Random weights of the real architecture time the same arithmetic as a trained checkpoint (none may be downloaded
here); the clip is a smooth texture that drifts and scales a little, so relative motion has something to follow.
"""
from __future__ import annotations

import torch

__all__ = ["make_inputs", "tiny_config", "random_checkpoint"]


def make_inputs(size: int, frames: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A smooth textured source and a driving clip whose content drifts and scales a little."""
    from hires_case import texture
    from tpsmm.core.geometry.coords import make_coordinate_grid

    tex = texture(size, seed)
    grid = make_coordinate_grid(size, size)[None]
    clip = []
    for t in range(frames):
        a = 0.1 * torch.sin(torch.tensor(t / 5.0))
        g = grid * (1 + 0.05 * a) + torch.stack([a, -a / 2])
        clip.append(torch.nn.functional.grid_sample(tex, g, padding_mode="border", align_corners=True))
    return dict(source=tex, driving=torch.cat(clip).clamp(0, 1))


def random_checkpoint(path: str, config=None) -> str:
    """Save a model of ``config`` (default: the vox-256 architecture) with seeded random weights to ``path``."""
    from tpsmm.core.model.checkpoint import save_checkpoint
    from tpsmm.core.model.config import ModelConfig
    from tpsmm.core import TPSMM

    torch.manual_seed(0)
    save_checkpoint(TPSMM(config or ModelConfig()).eval(), path)
    return path


def tiny_config():
    """A 64² model small enough for memory runs of hundreds of frames (2 TPS, narrow networks)."""
    from tpsmm.core.model.config import ModelConfig

    return ModelConfig(num_tps=2, gen_block_expansion=8, gen_max_features=32, dm_block_expansion=8,
                       dm_max_features=32, dm_num_blocks=3, avd_id_bottle_size=16, avd_pose_bottle_size=16,
                       image_size=64)
