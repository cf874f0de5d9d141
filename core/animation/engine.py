"""Batched renderer over the networks' own ``forward``: per-source caching, mixed precision, channels_last, compile.

The release re-encodes the source for every driving frame. Here everything that depends only on the
source — its anti-aliased downscale used by the dense motion network and the inpainting encoder's
feature maps — is computed once per clip (:class:`SourceCache`) and passed to the networks' ``forward``
(``source_small=``, ``encoded=``), and driving frames are processed in batches.

Precision: one policy, the networks' own (:mod:`tpsmm.core.networks.precision`). With
``dtype=torch.bfloat16`` / ``torch.float16`` the dense motion and inpainting forwards run under
``torch.autocast``, inside which the networks keep the TPS solve, heatmaps, grids, every
``grid_sample``, the softmax, sigmoids and blends in float32. The keypoint detector runs entirely in
float32 outside autocast: it decides where everything moves (in bfloat16 its error, ~0.003 normalised
units, dominated the output error — 37 dB instead of 53 dB PSNR against float32 on the vox-256
architecture — for ~2 % of the FLOPs). In float32 the engine computes exactly what the networks'
``forward`` computes.

The engine renders one batch; the loop over a clip (progress, interruption, out-of-memory halving)
is :class:`~tpsmm.core.animation.pipeline.AnimationPipeline`'s.

Example::

    engine = AnimationEngine(model, batch_size=8, dtype=torch.bfloat16, channels_last=True)
    src = model.prepare(photo, name="source", single=True)             # [1,3,S,S]
    kp_src, cache = engine.detect(src), engine.cache_source(src)
    gen, motion = engine.render_batch(cache, kp_src, kp_new)           # kp_new [b,5K,2]
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn

from ..networks.dense_motion import DenseMotion
from ..networks.inpainting import Generated
from ..networks.subpixel import subpixel_upsampling

__all__ = ["SourceCache", "AnimationEngine", "AMP_DTYPES", "inference_copy", "fold_batchnorm", "make_engine"]

AMP_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every eval-mode ``BatchNorm2d`` into the convolution that feeds it, in place; returns ``module``.

    The pairs are found by name, as the backbones spell them: ``convN``/``bnN`` and ``down``/``bn0`` siblings
    (ResNet-18 and the small backbone) and a ``Conv2d`` followed by a ``BatchNorm2d`` in a ``Sequential``
    (ResNet's ``downsample``). The folded convolution computes ``bn(conv(x))`` (float rounding aside);
    the BatchNorm becomes ``Identity``. Only for inference: the running statistics are baked in.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for parent in list(module.modules()):
        children = dict(parent.named_children())
        pairs = [(f"conv{n[2:]}", n) for n in children if n.startswith("bn") and n[2:].isdigit()]
        pairs = [("down" if c == "conv0" else c, b) for c, b in pairs]
        if isinstance(parent, nn.Sequential):
            names = list(children)
            pairs += [(a, b) for a, b in zip(names, names[1:])]
        for conv, bn in pairs:
            c, b = children.get(conv), children.get(bn)
            if isinstance(c, nn.Conv2d) and isinstance(b, nn.BatchNorm2d) and b.track_running_stats:
                setattr(parent, conv, fuse_conv_bn_eval(c.eval(), b.eval()))
                setattr(parent, bn, nn.Identity())
    return module


def inference_copy(module: nn.Module, *, dtype: torch.dtype, channels_last: bool) -> nn.Module:
    """A deep copy of ``module`` for fast inference; the original is left untouched.

    BatchNorm layers are folded into their convolutions (:func:`fold_batchnorm`). On the CPU every
    upsampling block runs its convolution on the low-resolution input
    (:func:`~tpsmm.core.networks.subpixel.subpixel_upsampling`: the same result, 2.25x fewer multiply-adds);
    on GPUs that change is not measured yet, so it is not made there.

    Every ``InstanceNorm2d`` (no running statistics) becomes the mathematically identical
    ``GroupNorm(C, C)`` with the same affine parameters and eps — unlike InstanceNorm, it keeps
    channels_last activations in that layout instead of copying them to NCHW. Parameters are cast
    to ``dtype`` (no per-call weight casts under autocast) and conv weights made channels_last.
    """
    out = fold_batchnorm(copy.deepcopy(module).eval())
    if next(module.parameters()).device.type == "cpu":
        subpixel_upsampling(out)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.InstanceNorm2d) and not child.track_running_stats:
                gn = nn.GroupNorm(child.num_features, child.num_features, eps=child.eps, affine=child.affine)
                if child.affine:
                    gn.weight.data.copy_(child.weight.data)
                    gn.bias.data.copy_(child.bias.data)
                setattr(parent, name, gn.to(child.weight.device) if child.affine else gn)
    out = out.to(dtype=dtype)
    if channels_last:
        out = out.to(memory_format=torch.channels_last)
    return out.eval().requires_grad_(False)


@dataclass
class SourceCache:
    """Source-only tensors reused for every frame.

    Attributes:
        frame: ``[1,3,S,S]`` float32 source in model layout.
        small: ``[1,3,h,w]`` float32 anti-aliased downscale (dense motion input).
        encoded: inpainting encoder maps, finest first (float32, ready for ``grid_sample``).
    """

    frame: torch.Tensor
    small: torch.Tensor
    encoded: list[torch.Tensor]


class AnimationEngine:
    """Renders a source image moved to a sequence of keypoint sets, ``batch_size`` frames at a time.

    Args:
        model: a :class:`~tpsmm.core.TPSMM` in eval mode.
        batch_size: driving frames per forward pass.
        dtype: compute dtype: ``None`` (the model's own), ``torch.float32``, ``torch.bfloat16`` or
            ``torch.float16`` (autocast; sensitive parts stay float32, see the module docstring).
        channels_last: feed channels_last activations (faster convolutions on most CPUs/GPUs).
        compile: ``False``, ``True`` (``torch.compile`` with the default backend) or a backend name
            (e.g. ``"aot_eager"``). The last partial batch is padded to ``batch_size`` so the
            compiled graph sees one shape.

    With a compute dtype other than the model's, or ``channels_last``, the engine runs on
    :func:`inference_copy` s of the networks (the model is never modified); otherwise on the model itself.
    """

    def __init__(self, model, *, batch_size: int = 8, dtype: torch.dtype | None = None,
                 channels_last: bool = False, compile: bool | str = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if dtype is not None and dtype not in AMP_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(map(str, AMP_DTYPES))}, got {dtype}")
        self.model, self.batch_size, self.channels_last = model, batch_size, channels_last
        self.device = model.device
        self.compute_dtype = dtype if dtype is not None else model.dtype
        self.amp_dtype = None if self.compute_dtype == torch.float32 else self.compute_dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        names = ("kp_detector", "dense_motion_network", "inpainting_network")
        if self.compute_dtype != model.dtype or channels_last:
            nets = {n: inference_copy(getattr(model, n), channels_last=channels_last,
                                      dtype=torch.float32 if n == "kp_detector" else self.compute_dtype)
                    for n in names}
        else:
            nets = {n: getattr(model, n) for n in names}
        self.nets = SimpleNamespace(kp=nets["kp_detector"], dm=nets["dense_motion_network"],
                                    inp=nets["inpainting_network"])
        self.compiled = bool(compile)
        self._core = self._render_core
        if compile:
            backend = compile if isinstance(compile, str) else "inductor"
            self._core = torch.compile(self._render_core, backend=backend, dynamic=False)

    # ----------------------------------------------------------------- precision helpers
    def _amp(self):
        """Autocast region for the convolutions (a no-op in float32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _fp32(self):
        """Region forced to float32 (autocast disabled)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, enabled=False)

    def _cl(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory_format) if self.channels_last else x

    # ----------------------------------------------------------------- keypoints
    @torch.no_grad()
    def detect(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B,3,S,S]`` model-layout frames -> ``[B,5K,2]`` float32 keypoints (always computed in float32)."""
        kp = self.nets.kp
        dtype = next(kp.parameters()).dtype
        with self._fp32():
            return kp(self._cl(frames.to(device=self.device, dtype=dtype))).float()

    # ----------------------------------------------------------------- source cache
    @torch.no_grad()
    def cache_source(self, source: torch.Tensor) -> SourceCache:
        """``[1,3,S,S]`` model-layout source -> :class:`SourceCache` (float32 tensors on the model's device)."""
        source = source.to(device=self.device, dtype=torch.float32)
        with self._fp32():
            small = self.model.dense_motion_network.downsample(source.to(self.model.dtype)).float()
        with self._amp():
            encoded = self.nets.inp.encode(self._cl(source.to(self.compute_dtype)))
        return SourceCache(frame=source, small=small, encoded=[e.float() for e in encoded])

    # ----------------------------------------------------------------- one batch
    def _render_core(self, cache: SourceCache, kp_source: torch.Tensor, kp_driving: torch.Tensor,
                     bg_param: torch.Tensor | None):
        """The networks' own forwards on the cached source (float32 regions are theirs, see the docstring)."""
        with self._amp():
            motion = self.nets.dm(cache.frame, kp_driving, kp_source, bg_param=bg_param, source_small=cache.small)
            gen = self.nets.inp(cache.frame, motion, encoded=cache.encoded)
        return gen, motion

    @torch.no_grad()
    def render_batch(self, cache: SourceCache, kp_source: torch.Tensor, kp_driving: torch.Tensor, *,
                     bg_param: torch.Tensor | None = None) -> tuple[Generated, DenseMotion]:
        """``kp_driving [b,5K,2]`` (``kp_source [1,5K,2]``) -> ``(Generated, DenseMotion)`` on the device.

        Args:
            bg_param: optional ``[b,3,3]`` background affine per frame (the background predictor's).

        All returned tensors are float32: ``prediction [b,3,S,S]``, ``deformation [b,h,w,2]``,
        ``occlusion`` list coarse to fine.
        """
        b = kp_driving.shape[0]
        kp_driving = kp_driving.to(device=self.device, dtype=torch.float32)
        kp_source = kp_source.to(device=self.device, dtype=torch.float32).expand(b, -1, -1)
        if bg_param is not None:
            bg_param = bg_param.to(device=self.device, dtype=torch.float32)
        pad = self.batch_size - b if self.compiled and b < self.batch_size else 0
        if pad:
            kp_driving = torch.cat([kp_driving, kp_driving[-1:].expand(pad, -1, -1)])
            kp_source = kp_source[:1].expand(self.batch_size, -1, -1)
            if bg_param is not None:
                bg_param = torch.cat([bg_param, bg_param[-1:].expand(pad, -1, -1)])
        gen, motion = self._core(cache, kp_source, kp_driving, bg_param)
        if pad:
            gen = Generated(prediction=gen.prediction[:b], deformed=gen.deformed[:b], warped_encoder_maps=[])
            motion = DenseMotion(deformation=motion.deformation[:b], contribution_maps=motion.contribution_maps[:b],
                                 occlusion=[o[:b] for o in motion.occlusion], deformed_source=motion.deformed_source[:b])
        return gen, motion


def make_engine(model, options, *, progress=None):
    """The renderer for ``options`` (an :class:`~tpsmm.core.animation.options.AnimationOptions`) on ``model``:
    an :class:`AnimationEngine` for the ``torch`` backend, a
    :class:`~tpsmm.core.backends.engine.GraphEngine` for ``onnxruntime``/``openvino`` (``auto`` resolved by
    :func:`~tpsmm.core.backends.resolve_backend`). ``progress(message)`` gets a first-use export's notes."""
    from ..backends import resolve_backend
    from ..backends.engine import GraphEngine
    from ..device import resolve_dtype
    from .options import default_batch_size

    device = model.device
    dtype = None if options.dtype is None else resolve_dtype(options.dtype, device)
    batch = options.batch_size or default_batch_size(device.type)
    backend = resolve_backend(options.backend, device, dtype or model.dtype)
    if backend == "torch":
        if options.graphs is not None:
            raise ValueError("graphs: an export folder needs backend onnxruntime or openvino, not torch")
        return AnimationEngine(model, batch_size=batch, dtype=dtype, channels_last=options.use_channels_last,
                               compile=options.compile)
    return GraphEngine(model, backend, batch_size=batch, dtype=dtype or torch.float32,
                       background=options.background, graphs=options.graphs, progress=progress)
