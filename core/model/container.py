"""The five networks of TPSMM in one module: construction from a config, placement, identity, input layout.

The user-level steps (keypoints, motion, generation, animation) live one layer up, in
:class:`tpsmm.core.TPSMM` (:mod:`tpsmm.core.animation.animator`), which adds them to this container by
calling the animation pipeline. Training and checkpoints need only this container.
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from .config import ModelConfig
from ..media.errors import FieldError
from ..media.images import to_model_layout
from ..networks.avd import AVDNetwork
from ..networks.bg_motion import BGLucasKanade, BGMotionPredictor
from ..networks.dense_motion import DenseMotion, DenseMotionNetwork
from ..networks.inpainting import Generated, InpaintingNetwork
from ..networks.keypoint_detector import KPDetector
from .structures import Keypoints

__all__ = ["TPSMMNetworks", "NETWORKS", "ModelError"]

NETWORKS = ("kp_detector", "dense_motion_network", "inpainting_network", "bg_predictor", "avd_network")


class ModelError(FieldError):
    """A request the loaded model cannot serve (missing network, foreign keypoints, bad mode)."""


class TPSMMNetworks(nn.Module):
    """Thin-Plate Spline Motion Model: the networks.

    Networks (attribute names = checkpoint prefixes): ``kp_detector``, ``dense_motion_network``,
    ``inpainting_network``, and the optional ``bg_predictor`` (``None`` when ``config.bg`` is False or
    the checkpoint has none; a weightless :class:`BGLucasKanade` when ``config.bg_motion == "lk"``) and
    ``avd_network``.

    Image arguments of the public steps use the user layout (``[H,W,3]`` / ``[B,H,W,3]`` float in
    ``[0,1]``); see :mod:`tpsmm.core.media.images` for conversion and resizing.
    """

    def __init__(self, config: ModelConfig, *, with_bg: bool | None = None, with_avd: bool = True) -> None:
        super().__init__()
        self.config = config
        c = config
        self.kp_detector = KPDetector(num_tps=c.num_tps, num_channels=c.num_channels, backbone=c.backbone,
                                      width=c.backbone_width)
        self.dense_motion_network = DenseMotionNetwork(
            num_tps=c.num_tps, num_channels=c.num_channels, block_expansion=c.dm_block_expansion,
            num_blocks=c.dm_num_blocks, max_features=c.dm_max_features, scale_factor=c.scale_factor,
            multi_mask=c.multi_mask, kp_variance=c.kp_variance)
        self.inpainting_network = InpaintingNetwork(
            num_channels=c.num_channels, block_expansion=c.gen_block_expansion, max_features=c.gen_max_features,
            num_down_blocks=c.gen_num_down_blocks, multi_mask=c.multi_mask)
        if not (c.bg if with_bg is None else with_bg):
            self.bg_predictor = None
        elif c.bg_motion == "lk":
            self.bg_predictor = BGLucasKanade(model=c.bg_lk_model)
        else:
            self.bg_predictor = BGMotionPredictor(num_channels=c.num_channels, backbone=c.backbone,
                                                  width=c.backbone_width)
        self.avd_network = AVDNetwork(num_tps=c.num_tps, id_bottle_size=c.avd_id_bottle_size,
                                      pose_bottle_size=c.avd_pose_bottle_size) if with_avd else None
        self._model_id: str | None = None

    @classmethod
    def for_networks(cls, config: ModelConfig, networks) -> "TPSMMNetworks":
        """The model that a checkpoint holding ``networks`` (names) builds, with the background rule in one place:
        a measured (``lk``) background has no weights, so it is there whenever the config asks for it; a learned
        one only when the file holds ``bg_predictor`` tensors (else the config's ``bg`` is switched off); the AVD
        network when the file holds it."""
        names = set(networks)
        with_bg = "bg_predictor" in names or (config.bg and config.bg_motion == "lk")
        if config.bg and not with_bg:
            config = config.replace(bg=False)
        return cls(config, with_bg=with_bg, with_avd="avd_network" in names)

    # ----------------------------------------------------------------- identity and placement
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def model_id(self) -> str:
        """Fingerprint of config and weights, used to refuse keypoints from another model."""
        if self._model_id is None:
            h = hashlib.sha1(repr(self.config).encode())
            fc = self.kp_detector.fg_encoder.fc
            h.update(fc.bias.detach().float().cpu().numpy().tobytes())
            h.update(fc.weight.detach().float().cpu()[:, :8].numpy().tobytes())
            self._model_id = h.hexdigest()[:16]
        return self._model_id

    def refresh_model_id(self) -> None:
        """Forget the cached fingerprint (call after changing weights)."""
        self._model_id = None

    def present_networks(self) -> list[str]:
        return [n for n in NETWORKS if getattr(self, n) is not None]

    # ----------------------------------------------------------------- tensor-level steps
    def prepare(self, images, *, name: str, single: bool = False) -> torch.Tensor:
        """User-layout images -> ``[B,3,S,S]`` on the model's device/dtype (see :mod:`tpsmm.core.media.images`)."""
        return to_model_layout(images, name=name, device=self.device, dtype=self.dtype,
                               size=self.config.image_size, single=single)

    def detect(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B,3,S,S] -> [B,5K,2]`` keypoints."""
        return self.kp_detector(frames)

    def generate_frames(self, source: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor, *,
                        bg_param: torch.Tensor | None = None) -> tuple[Generated, DenseMotion]:
        """One dense-motion + inpainting pass: ``source [1 or B,3,S,S]`` moved to ``kp_driving [B,5K,2]``."""
        motion = self.dense_motion_network(source, kp_driving, kp_source, bg_param=bg_param)
        return self.inpainting_network(source, motion), motion

    def check_keypoints(self, kp: Keypoints, name: str) -> None:
        if kp.model_id != self.model_id:
            raise ModelError(f"{name}: keypoints come from another model (id {kp.model_id}, this model is "
                             f"{self.model_id}); extract them with the same checkpoint")
