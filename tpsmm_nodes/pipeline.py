"""The animation steps as the nodes call them: IMAGE/VIDEO in, Keypoints/Motion/IMAGE out.

Each function takes the :class:`~tpsmm.core.animation.engine.AnimationEngine` yielded by
:func:`~tpsmm.tpsmm_nodes.runtime.on_device` and works in pieces of ``engine.batch_size`` frames
(progress, interruption, OOM retry). Results are float32 CPU copies; inputs are never modified.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterator

import torch

from ..core.animation.engine import AnimationEngine
from ..core.media.images import InputError, to_user_layout
from ..core.model import ModelError
from ..core.animation.smoothing import make_filter
from ..core.model.structures import Keypoints, Motion
from . import comfy_compat as cc
from .runtime import check_aspect, check_images, chunks, to_output

__all__ = ["extract_keypoints", "video_batches", "video_size", "estimate_motion", "generate", "animate",
           "dense_motion", "smooth_keypoints"]


def extract_keypoints(engine: AnimationEngine, images, *, name: str) -> Keypoints:
    """Keypoints of an IMAGE batch, or of an iterator of IMAGE chunks (a streamed video).

    ``frames`` (the model-size image) is kept only when there is a single image (a source).
    """
    model, values = engine.model, []
    if isinstance(images, torch.Tensor):
        images = check_images(images, name)

        def step(a, b):
            values.append(engine.detect(model.prepare(images[a:b], name=name)))
            return b - a
        chunks(engine, images.shape[0], step)
        first = images[:1] if images.shape[0] == 1 else None
    else:
        first = None
        for i, chunk in enumerate(images):
            cc.check_interrupt()
            values.append(engine.detect(model.prepare(chunk, name=name)))
            first = chunk[:1] if i == 0 else None
        if not values:
            raise InputError(f"{name}: the video has no frames")
        first = first if sum(len(v) for v in values) == 1 else None
    frames = model.prepare(first, name=name) if first is not None else None
    return to_output(Keypoints(value=torch.cat(values), model_id=model.model_id, frames=frames))


def video_size(video) -> tuple[int, int]:
    """``(width, height)`` of a ComfyUI VIDEO (``VideoInput``)."""
    w, h = video.get_dimensions()
    return int(w), int(h)


def video_batches(video, *, size: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Stream a ComfyUI VIDEO as float IMAGE chunks ``[b,size,size,3]``.

    A video file is decoded one frame at a time and resized on the fly (memory: one chunk); videos
    held in memory (``VideoFromComponents``, uploads kept as bytes) fall back to ``get_components()``.
    """
    from ..core.media.video import VideoReader

    source = video.get_stream_source() if hasattr(video, "get_stream_source") else None
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        with VideoReader(source, size=size) as reader:
            for chunk in reader.batches(batch_size):
                yield torch.from_numpy(chunk).float().div_(255)
        return
    images = video.get_components().images
    for start in range(0, images.shape[0], batch_size):
        yield images[start:start + batch_size]


def smooth_keypoints(kp: Keypoints, kind: str, strength: float, fps: float) -> Keypoints:
    """Causal temporal smoothing of driving keypoints (:func:`tpsmm.core.animation.smoothing.make_filter`)."""
    filt = make_filter(kind, strength, fps=fps)
    return kp if filt is None else dataclasses.replace(kp, value=filt(kp.value))


def estimate_motion(engine: AnimationEngine, kp_source: Keypoints, kp_driving: Keypoints, *, mode: str,
                    reference_frame: int, best_frame: bool, strength: float, smoothing: str = "off",
                    smoothing_strength: float = 0.0, fps: float = 30.0) -> Motion:
    """``TPSMM.estimate_motion`` on the model's device (driving keypoints smoothed first); CPU result."""
    if not isinstance(kp_source, Keypoints) or not isinstance(kp_driving, Keypoints):
        raise InputError("keypoints: expected TPSMM_KEYPOINTS from 'TPSMM Extract Keypoints'")
    model = engine.model
    kp_driving = smooth_keypoints(kp_driving, smoothing, smoothing_strength, fps)
    on = lambda kp: dataclasses.replace(kp, value=kp.value.to(device=model.device, dtype=model.dtype))  # noqa: E731
    motion = model.estimate_motion(on(kp_source), on(kp_driving), mode=mode, strength=strength,
                                   reference_frame="best" if best_frame else reference_frame)
    return to_output(motion)


def _check_motion(engine: AnimationEngine, motion) -> None:
    if not isinstance(motion, Motion):
        raise InputError(f"motion: expected a TPSMM_MOTION from 'TPSMM Estimate Motion', got {type(motion).__name__}")
    if motion.model_id != engine.model.model_id:
        raise ModelError("motion: it was estimated with another model; use the same checkpoint for every TPSMM node")


def generate(engine: AnimationEngine, source, motion: Motion) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``motion`` on the single source IMAGE -> ``(frames [T,S,S,3], occlusion [T,S,S])``."""
    _check_motion(engine, motion)
    source = engine.model.prepare(check_images(source, "source"), name="source", single=True)
    cache, frames, occlusion = engine.cache_source(source), [], []

    def step(a, b):
        gen, dm = engine.render_batch(cache, motion.kp_source, motion.kp_driving[a:b])
        frames.append(to_user_layout(gen.prediction.clamp(0, 1)))
        occlusion.append(dm.occlusion[-1][:, 0].float().cpu())
        return b - a
    chunks(engine, len(motion), step)
    return to_output(torch.cat(frames)), to_output(torch.cat(occlusion))


def dense_motion(engine: AnimationEngine, motion: Motion) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense motion of each output frame: deformation ``[T,h,w,2]`` and finest occlusion ``[T,h',w']``."""
    _check_motion(engine, motion)
    if motion.source is None:
        raise InputError("motion: it carries no source frame; estimate it from keypoints that 'TPSMM Extract "
                         "Keypoints' made on a single source image")
    cache, deform, occ = engine.cache_source(motion.source), [], []

    def step(a, b):
        _, dm = engine.render_batch(cache, motion.kp_source, motion.kp_driving[a:b])
        deform.append(dm.deformation.float().cpu())
        occ.append(dm.occlusion[-1][:, 0].float().cpu())
        return b - a
    chunks(engine, len(motion), step)
    return torch.cat(deform), torch.cat(occ)


def animate(engine: AnimationEngine, source, *, driving=None, video=None, mode: str, reference_frame: int,
            best_frame: bool, strength: float, smoothing: str, smoothing_strength: float, fps: float,
            allow_stretch: bool) -> torch.Tensor:
    """Keypoints, motion and generation in one go; driving as an IMAGE batch or a streamed VIDEO."""
    model = engine.model
    source = check_images(source, "source")
    if source.shape[0] != 1:
        raise InputError(f"source: expected one image, got a batch of {source.shape[0]} "
                         "(pick one with Image From Batch)")
    if (driving is None) == (video is None):
        raise InputError("Animate: connect exactly one of 'driving' (IMAGE) or 'driving_video' (VIDEO)")
    if driving is not None:
        driving = check_images(driving, "driving")
    if mode == "avd" and model.avd_network is None:
        raise ModelError("mode 'avd': this checkpoint has no AVD network (train one with `tpsmm train-avd`, "
                         "or use mode 'relative')")
    driving_wh = (driving.shape[2], driving.shape[1]) if video is None else video_size(video)
    check_aspect((source.shape[2], source.shape[1]), driving_wh, allow_stretch=allow_stretch)
    kp_source = extract_keypoints(engine, source, name="source")
    frames = driving if video is None else video_batches(video, size=model.config.image_size,
                                                         batch_size=engine.batch_size)
    kp_driving = extract_keypoints(engine, frames, name="driving")
    motion = estimate_motion(engine, kp_source, kp_driving, mode=mode, reference_frame=reference_frame,
                             best_frame=best_frame, strength=strength, smoothing=smoothing,
                             smoothing_strength=smoothing_strength,
                             fps=fps if video is None else float(video.get_frame_rate()))
    return generate(engine, source, motion)[0]
