"""The user-facing model: the networks plus the animation steps, all through the one pipeline.

Example::

    from tpsmm.core import load_model
    model = load_model("vox.safetensors", device="cpu", dtype=torch.float32)
    frames = model.animate(source, driving, mode="relative")          # [H,W,3], [T,H,W,3] -> [T,S,S,3]

    kp_src = model.extract_keypoints(source)                           # the same, step by step
    kp_drv = model.extract_keypoints(driving)
    motion = model.estimate_motion(kp_src, kp_drv, mode="relative", reference_frame="best")
    frames, occlusion = model.generate(source, motion, batch_size=8)
"""
from __future__ import annotations

import torch

from ..backends.choice import check_backend
from ..model.checkpoint import load_networks
from ..model.config import Config
from ..model.container import TPSMMNetworks
from ..model.structures import Keypoints, Motion
from .options import AnimationOptions
from .pipeline import AnimationPipeline

__all__ = ["TPSMM", "load_model"]


class TPSMM(TPSMMNetworks):
    """Thin-Plate Spline Motion Model with its user-level steps.

    Images use the user layout: float ``[H,W,3]`` / ``[B,H,W,3]`` in ``[0,1]`` (ComfyUI's IMAGE). Every
    step runs through :class:`~tpsmm.core.animation.pipeline.AnimationPipeline` in the model's own dtype
    on its device; for more control (high resolution, crops, layouts, precision, progress) build an
    :class:`~tpsmm.core.animation.options.AnimationOptions` and use the pipeline directly.
    """

    backend: str = "auto"
    """What runs the networks in every step (see :data:`~tpsmm.core.backends.BACKENDS`); set by :func:`load_model`."""

    def _pipeline(self, batch_size: int = 8, **options) -> AnimationPipeline:
        dtype = self.dtype if self.dtype in (torch.float32, torch.bfloat16, torch.float16) else None
        return AnimationPipeline(self, AnimationOptions(batch_size=batch_size, dtype=dtype, backend=self.backend,
                                                        **options))

    @torch.no_grad()
    def extract_keypoints(self, images, *, batch_size: int = 8) -> Keypoints:
        """Keypoints of user-layout images ``[H,W,3]`` or ``[B,H,W,3]`` -> :class:`Keypoints` (``[B,5K,2]``)."""
        return self._pipeline(batch_size).extract_keypoints(images, name="images")

    @torch.no_grad()
    def estimate_motion(self, kp_source: Keypoints, kp_driving: Keypoints, *, mode: str = "relative",
                        reference_frame: int | str = 0, strength: float = 1.0) -> Motion:
        """Transfer driving motion onto the source keypoints.

        Args:
            kp_source: keypoints of one source image (``[1,5K,2]``).
            kp_driving: keypoints of ``T`` driving frames.
            mode: ``standard`` | ``relative`` | ``avd``.
            reference_frame: relative mode: index of the driving frame matching the source pose (negative
                counts from the end, -1 = the last; outside ``-T..T-1`` is refused), or ``"best"`` (closest
                normalised keypoint layout).
            strength: relative mode movement multiplier.
        """
        return self._pipeline(mode=mode, reference_frame=reference_frame,
                              strength=strength).estimate_motion(kp_source, kp_driving)

    @torch.no_grad()
    def generate(self, source, motion: Motion, *, batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """Render ``motion`` on a source image ``[H,W,3]`` / ``[1,H,W,3]``.

        Returns:
            ``(frames [T,S,S,3], occlusion [T,S,S])`` float32 on CPU in ``[0,1]``.
        """
        out = list(self._pipeline(batch_size, with_motion=True).generate(source, motion))
        return torch.cat([o.frames for o in out]), torch.cat([o.occlusion for o in out])

    @torch.no_grad()
    def animate(self, source, driving, mode: str = "relative", *, reference_frame: int | str = 0,
                strength: float = 1.0, batch_size: int = 8) -> torch.Tensor:
        """Animate ``source`` (``[H,W,3]``/``[1,H,W,3]``) with ``driving`` (``[T,H,W,3]``), values in ``[0,1]``.

        Returns ``[T,S,S,3]`` float32 in ``[0,1]`` on CPU (S = ``config.image_size``). Equivalent to the
        release's demo pipeline (no background predictor; relative mode uses ``reference_frame`` as the
        initial driving frame).
        """
        pipeline = self._pipeline(batch_size, mode=mode, reference_frame=reference_frame, strength=strength)
        return torch.cat([out.frames for out in pipeline.run(source, driving)])


def load_model(path: str, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
               config: str | Config | None = None, image_size: int | None = None, backend: str = "auto") -> TPSMM:
    """Load a checkpoint as a :class:`TPSMM` for inference (``eval()`` mode, no gradients).

    ``backend`` (one of :data:`~tpsmm.core.backends.BACKENDS`) runs every step of the model: ``auto``
    (the fastest installed for the device and dtype), ``torch``, ``onnxruntime`` or ``openvino``; a graph
    backend exports the networks on first use and caches them (see :mod:`tpsmm.core.backends.cache`).

    Accepts tpsmm ``.safetensors`` files and, with a warning, release ``.pth.tar`` files (converted in
    memory, read with ``weights_only=True``). ``config``/``image_size`` only apply to release files
    (and ``image_size`` also overrides a safetensors file's inference size).
    """
    check_backend(backend)
    model = load_networks(path, device=device, dtype=dtype, config=config, image_size=image_size, cls=TPSMM)
    model.backend = backend
    return model
