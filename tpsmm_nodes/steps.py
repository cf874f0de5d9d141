"""The animation steps as the nodes call them: IMAGE/VIDEO in, Keypoints/Motion/IMAGE out.

Each function takes the :class:`~tpsmm.core.animation.pipeline.AnimationPipeline` yielded by
:func:`~tpsmm.tpsmm_nodes.runtime.on_device` and only converts ComfyUI types to and from it: the
pipeline does the batching, progress, interruption and out-of-memory retries. Results are float32 CPU
copies; inputs are never modified.
"""
from __future__ import annotations

import os
from typing import Iterator

import torch

from ..core.animation.driving import DrivingFrames
from ..core.animation.pipeline import AnimationPipeline
from ..core.media.images import InputError
from ..core.media.size import Size
from ..core.model.container import ModelError
from ..core.model.structures import Keypoints, Motion
from .runtime import check_aspect, check_images, to_output

__all__ = ["clip_of", "extract_keypoints", "estimate_motion", "generate", "animate", "animate_batches", "dense_motion",
           "video_size"]


def video_size(video) -> Size:
    """The :class:`~tpsmm.core.media.size.Size` of a ComfyUI VIDEO (``VideoInput.get_dimensions`` is width first)."""
    w, h = video.get_dimensions()
    return Size(int(h), int(w))


def _video_batches(video, n: int) -> Iterator[torch.Tensor]:
    """Stream a ComfyUI VIDEO as float IMAGE chunks ``[b,H,W,3]``.

    A video file is decoded one batch at a time (memory: one chunk); videos held in memory
    (``VideoFromComponents``, uploads kept as bytes) fall back to ``get_components()``.
    """
    source = video.get_stream_source() if hasattr(video, "get_stream_source") else None
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        with DrivingFrames.from_video(source) as clip:
            yield from clip.batches(n)
        return
    images = video.get_components().images
    for start in range(0, images.shape[0], n):
        yield images[start:start + n]


def clip_of(images=None, video=None, *, name: str, inputs: tuple[str, str] = ("images", "video")) -> DrivingFrames:
    """A :class:`DrivingFrames` over an IMAGE batch or a ComfyUI VIDEO (exactly one of the node's ``inputs``)."""
    if (images is None) == (video is None):
        raise InputError(f"{name}: connect exactly one of '{inputs[0]}' (IMAGE) or '{inputs[1]}' (VIDEO)")
    if video is None:
        return DrivingFrames.from_tensor(check_images(images, name), name=name)
    return DrivingFrames.from_batches(lambda n: _video_batches(video, n), fps=float(video.get_frame_rate()),
                                      size=video_size(video), name=name)


def extract_keypoints(pipeline: AnimationPipeline, clip: DrivingFrames, *, name: str) -> Keypoints:
    """Keypoints of every frame of ``clip`` (the model-size frame is kept for a single image, a source)."""
    return to_output(pipeline.extract_keypoints(clip, name=name))


def estimate_motion(pipeline: AnimationPipeline, kp_source, kp_driving, *, fps: float = 30.0) -> Motion:
    """Smoothing and motion transfer with the pipeline's options; CPU result."""
    if not isinstance(kp_source, Keypoints) or not isinstance(kp_driving, Keypoints):
        raise InputError("keypoints: expected TPSMM_KEYPOINTS from 'TPSMM Extract Keypoints'")
    return to_output(pipeline.estimate_motion(kp_source, kp_driving, fps=fps))


def _check_motion(pipeline: AnimationPipeline, motion) -> None:
    if not isinstance(motion, Motion):
        raise InputError(f"motion: expected a TPSMM_MOTION from 'TPSMM Estimate Motion', got {type(motion).__name__}")
    if motion.model_id != pipeline.model.model_id:
        raise ModelError("motion: it was estimated with another model; use the same checkpoint for every TPSMM node")


def generate(pipeline: AnimationPipeline, source, motion: Motion) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``motion`` on the single source IMAGE -> ``(frames [T,H,W,3], occlusion [T,S,S])``."""
    _check_motion(pipeline, motion)
    out = list(pipeline.generate(check_images(source, "source"), motion))
    return to_output(torch.cat([o.frames for o in out])), to_output(torch.cat([o.occlusion for o in out]))


def dense_motion(pipeline: AnimationPipeline, motion: Motion) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense motion of each output frame: deformation ``[T,h,w,2]`` and finest occlusion ``[T,S,S]``."""
    _check_motion(pipeline, motion)
    if motion.source is None:
        raise InputError("motion: it carries no source frame; estimate it from keypoints that 'TPSMM Extract "
                         "Keypoints' made on a single source image")
    source = motion.source[0].permute(1, 2, 0).float().cpu()
    out = list(pipeline.generate(source, motion))
    return torch.cat([o.deformation for o in out]), torch.cat([o.occlusion for o in out])


def animate(pipeline: AnimationPipeline, source, clip: DrivingFrames, *, allow_stretch: bool) -> torch.Tensor:
    """Keypoints, motion and generation in one pass over a driving IMAGE batch or a streamed VIDEO."""
    return to_output(torch.cat(list(animate_batches(pipeline, source, clip, allow_stretch=allow_stretch))))


def animate_batches(pipeline: AnimationPipeline, source, clip: DrivingFrames, *,
                    allow_stretch: bool) -> Iterator[torch.Tensor]:
    """:func:`animate` one batch at a time: float ``[b,Ho,Wo,3]`` CPU frames, never the whole clip."""
    source = check_images(source, "source")
    if source.shape[0] != 1:
        raise InputError(f"source: expected one image, got a batch of {source.shape[0]} "
                         "(pick one with Image From Batch)")
    if pipeline.options.crop is None and pipeline.options.driving_crop is None:
        check_aspect(Size.of_image(source), clip.size, allow_stretch=allow_stretch)
    for out in pipeline.run(source, clip):
        yield out.frames
