"""One training iteration's forward pass: every network, every loss (reference ``GeneratorFullModel``).

:class:`BatchLosses` is the module that DDP wraps. Its randomness (TPS dropout masks and the random
TPS of the equivariance loss) comes from a CPU generator seeded per call (``noise_seed``), so a
sample's noise depends only on the seed, the step and its position in the global batch — not on the
number of processes, nor on what ran before (exact resume).
"""
from __future__ import annotations

import torch
from torch import nn

from ..core.model.config import ModelConfig, TrainConfig
from ..core import TPSMM
from ..core.geometry.tps import RandomTPS
from .losses import ImagePyramid, background_loss, equivariance_loss, warp_loss

__all__ = ["dropout_probability", "background_active", "BatchLosses", "LOSS_NAMES"]

LOSS_NAMES = ("perceptual", "l1_ssim", "equivariance_value", "warp_loss", "bg")


def dropout_probability(epoch: int, train: TrainConfig) -> float | None:
    """TPS dropout probability at ``epoch`` (released schedule), ``None`` once dropout is off.

    ``P = min(epoch / dropout_inc_epoch * maxp + startp, maxp)`` while ``epoch < dropout_epoch``.
    """
    if epoch < 0:
        raise ValueError(f"dropout_probability: epoch must be >= 0, got {epoch}")
    if epoch >= train.dropout_epoch:
        return None
    return min(epoch / train.dropout_inc_epoch * train.dropout_maxp + train.dropout_startp, train.dropout_maxp)


def background_active(epoch: int, model: ModelConfig, train: TrainConfig) -> bool:
    """Whether the background predictor is used (and trained) at ``epoch``: ``bg`` and ``epoch >= bg_start``."""
    return bool(model.bg) and epoch >= train.bg_start


class BatchLosses(nn.Module):
    """``(source, driving) [B,3,H,W] -> (losses, visuals)`` for one micro-batch.

    Args:
        model: the :class:`TPSMM` being trained (its networks are shared, not copied).
        train: the recipe (loss weights, scales, random TPS, dropout schedule).
        reconstruction: :class:`~tpsmm.trainer.losses.PerceptualLoss` or
            :class:`~tpsmm.trainer.losses.L1SSIMLoss`, or ``None`` when the perceptual weights are all 0.
        with_bg: include the background predictor (it must exist). Build a new ``BatchLosses`` (and
            DDP wrapper) when it switches on at ``bg_start``, so DDP never sees unused parameters.
    """

    def __init__(self, *, model: TPSMM, train: TrainConfig, reconstruction: nn.Module | None,
                 with_bg: bool) -> None:
        super().__init__()
        if with_bg and model.bg_predictor is None:
            raise ValueError("BatchLosses: with_bg=True but the model has no bg_predictor (config bg=False)")
        self.kp_detector = model.kp_detector
        self.dense_motion_network = model.dense_motion_network
        self.inpainting_network = model.inpainting_network
        self.bg_predictor = model.bg_predictor if with_bg else None
        # a measured (bg_motion="lk") background has no weights: no cycle-consistency loss to train it
        self.bg_loss_on = (self.bg_predictor is not None and train.loss_bg != 0
                           and any(True for _ in self.bg_predictor.parameters()))
        self.train_config = train
        self.pyramid = ImagePyramid(scales=train.scales, channels=model.config.num_channels)
        self.reconstruction = reconstruction

    def forward(self, source: torch.Tensor, driving: torch.Tensor, *, epoch: int,
                noise_seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Args:
            source, driving: ``[B,3,H,W]`` in ``[0,1]``.
            epoch: current epoch (dropout schedule).
            noise_seed: seed of this micro-batch's random TPS and dropout masks.

        Returns:
            ``losses``: float32 scalars already weighted (``perceptual`` or ``l1_ssim``,
            ``equivariance_value``, ``warp_loss``, ``bg`` — only the enabled ones);
            ``visuals``: detached tensors for pictures (``source``, ``driving``, ``prediction``,
            ``deformed``, ``occlusion`` ``[B,1,H,W]``, ``kp_source``, ``kp_driving`` ``[B,N,2]``).
        """
        if source.shape != driving.shape or source.ndim != 4:
            raise ValueError(f"BatchLosses: source {tuple(source.shape)} and driving {tuple(driving.shape)} "
                             "must both be [B,3,H,W]")
        tc = self.train_config
        gen = torch.Generator().manual_seed(int(noise_seed))
        kp_source = self.kp_detector(source).float()
        kp_driving = self.kp_detector(driving).float()
        bg_param = self.bg_predictor(source, driving).float() if self.bg_predictor is not None else None
        # the geometry stays float32 under autocast: the TPS solve (an 8x8 inverse) and the blended sampling
        # coordinates would lose about a pixel in bfloat16; the encoders, inpainting and VGG use autocast
        with torch.autocast(source.device.type, enabled=False):
            motion = self.dense_motion_network(source.float(), kp_driving, kp_source, bg_param=bg_param,
                                               dropout_p=dropout_probability(epoch, tc), generator=gen)
        generated = self.inpainting_network(source, motion, with_warped_maps=tc.loss_warp != 0)
        losses: dict[str, torch.Tensor] = {}
        if self.reconstruction is not None:
            losses[self.reconstruction.name] = self.reconstruction(
                self.pyramid(generated.prediction), self.pyramid(driving))
        if tc.loss_equivariance_value != 0:
            transform = RandomTPS(batch=driving.shape[0], sigma_affine=tc.sigma_affine, sigma_tps=tc.sigma_tps,
                                  points=tc.points_tps, device=driving.device, generator=gen)
            losses["equivariance_value"] = equivariance_loss(self.kp_detector, driving, kp_driving, transform,
                                                             weight=tc.loss_equivariance_value)
        if tc.loss_warp != 0:
            encoded = self.inpainting_network.get_encode(driving, motion.occlusion)
            losses["warp_loss"] = warp_loss(encoded, generated.warped_encoder_maps, weight=tc.loss_warp)
        if self.bg_loss_on:
            reverse = self.bg_predictor(driving, source)
            losses["bg"] = background_loss(bg_param, reverse, weight=tc.loss_bg)
        visuals = {"source": source.detach(), "driving": driving.detach(),
                   "prediction": generated.prediction.detach(), "deformed": generated.deformed.detach(),
                   "occlusion": motion.occlusion[-1].detach(), "kp_source": kp_source.detach(),
                   "kp_driving": kp_driving.detach()}
        return losses, visuals
