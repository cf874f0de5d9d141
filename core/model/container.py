"""The assembled TPSMM model: five networks plus the animation steps (keypoints, motion, generation)."""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from .config import ModelConfig
from ..media.images import to_model_layout
from ..animation.motion import best_reference_frame, relative_keypoints
from ..networks.avd import AVDNetwork
from ..networks.bg_motion import BGLucasKanade, BGMotionPredictor
from ..networks.dense_motion import DenseMotion, DenseMotionNetwork
from ..networks.inpainting import Generated, InpaintingNetwork
from ..networks.keypoint_detector import KPDetector
from .structures import MODES, Keypoints, Motion

__all__ = ["TPSMM", "NETWORKS", "ModelError"]

NETWORKS = ("kp_detector", "dense_motion_network", "inpainting_network", "bg_predictor", "avd_network")


class ModelError(ValueError):
    """A request the loaded model cannot serve (missing network, foreign keypoints, bad mode)."""


class TPSMM(nn.Module):
    """Thin-Plate Spline Motion Model.

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

    # ----------------------------------------------------------------- user-level steps
    @torch.no_grad()
    def extract_keypoints(self, images) -> Keypoints:
        """Keypoints of user-layout images ``[H,W,3]`` or ``[B,H,W,3]`` -> :class:`Keypoints` (``[B,5K,2]``)."""
        frames = self.prepare(images, name="images")
        return Keypoints(value=self.detect(frames), model_id=self.model_id, frames=frames)

    def check_keypoints(self, kp: Keypoints, name: str) -> None:
        if kp.model_id != self.model_id:
            raise ModelError(f"{name}: keypoints come from another model (id {kp.model_id}, this model is "
                             f"{self.model_id}); extract them with the same checkpoint")

    @torch.no_grad()
    def estimate_motion(self, kp_source: Keypoints, kp_driving: Keypoints, *, mode: str = "relative",
                        reference_frame: int | str = 0, strength: float = 1.0) -> Motion:
        """Transfer driving motion onto the source keypoints.

        Args:
            kp_source: keypoints of one source image (``[1,5K,2]``).
            kp_driving: keypoints of ``T`` driving frames.
            mode: ``standard`` | ``relative`` | ``avd``.
            reference_frame: relative mode: index of the driving frame matching the source pose, or
                ``"best"`` (closest normalised keypoint layout).
            strength: relative mode movement multiplier.
        """
        self.check_keypoints(kp_source, "kp_source")
        self.check_keypoints(kp_driving, "kp_driving")
        if len(kp_source) != 1:
            raise ModelError(f"kp_source: expected keypoints of one source image, got {len(kp_source)}")
        if mode not in MODES:
            raise ModelError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        src, drv = kp_source.value, kp_driving.value
        if mode == "standard":
            new = drv
        elif mode == "relative":
            t = len(kp_driving)
            ref = best_reference_frame(src, drv) if reference_frame == "best" else int(reference_frame)
            if not -t <= ref < t:
                raise ModelError(f"reference_frame: {ref} is outside the {t} driving frames")
            new = relative_keypoints(src, drv, drv[ref:ref + 1] if ref >= 0 else drv[ref:][:1], strength=strength)
        else:
            if self.avd_network is None:
                raise ModelError("mode 'avd': this checkpoint has no AVD network (train one with "
                                 "`tpsmm train-avd`, or use mode 'relative')")
            was_training = self.avd_network.training
            self.avd_network.eval()
            new = self.avd_network(src.expand(drv.shape[0], -1, -1), drv)
            self.avd_network.train(was_training)
        return Motion(kp_source=src, kp_driving=new, mode=mode, model_id=self.model_id, source=kp_source.frames)

    @torch.no_grad()
    def generate(self, source, motion: Motion, *, batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """Render ``motion`` on a source image.

        Args:
            source: user-layout source image ``[H,W,3]`` or ``[1,H,W,3]``.
            motion: from :meth:`estimate_motion`.
            batch_size: frames per forward pass.

        Returns:
            ``(frames [T,S,S,3], occlusion [T,S,S])`` float32 on CPU in ``[0,1]``.
        """
        if motion.model_id != self.model_id:
            raise ModelError("motion: it was estimated with another model; use the same checkpoint")
        return self._generate_prepared(self.prepare(source, name="source", single=True), motion, batch_size)

    def _generate_prepared(self, src: torch.Tensor, motion: Motion, batch_size: int):
        from ..animation.engine import AnimationEngine

        engine = AnimationEngine(self, batch_size=batch_size)
        frames, occlusion = [], []
        for out in engine.render(src, motion.kp_source, motion.kp_driving, with_occlusion=True):
            frames.append(out.frames)
            occlusion.append(out.occlusion)
        return torch.cat(frames), torch.cat(occlusion)

    @torch.no_grad()
    def animate(self, source, driving, mode: str = "relative", *, reference_frame: int | str = 0,
                strength: float = 1.0, batch_size: int = 8) -> torch.Tensor:
        """Animate ``source`` (``[H,W,3]``/``[1,H,W,3]``) with ``driving`` (``[T,H,W,3]``), values in ``[0,1]``.

        Returns ``[T,S,S,3]`` float32 in ``[0,1]`` on CPU (S = ``config.image_size``). Equivalent to the
        release's demo pipeline (no background predictor; relative mode uses ``reference_frame`` as the
        initial driving frame).
        """
        if mode == "avd" and self.avd_network is None:
            raise ModelError("mode 'avd': this checkpoint has no AVD network (train one with "
                             "`tpsmm train-avd`, or use mode 'relative')")
        src = self.prepare(source, name="source", single=True)
        kp_src = Keypoints(value=self.detect(src), model_id=self.model_id, frames=src)
        kp_drv = self.extract_keypoints(driving)
        motion = self.estimate_motion(kp_src, kp_drv, mode=mode, reference_frame=reference_frame, strength=strength)
        frames, _ = self._generate_prepared(src, motion, batch_size)
        return frames
