"""The animation steps as the nodes call them: IMAGE/VIDEO in, Keypoints/Motion/IMAGE out.

Each function takes the :class:`~tpsmm.core.animation.pipeline.AnimationPipeline` yielded by
:func:`~tpsmm.tpsmm_nodes.runtime.on_device` and only converts ComfyUI types to and from it: the
pipeline does the batching, progress, interruption and out-of-memory retries. Results are float32 CPU
copies; inputs are never modified.
"""
from __future__ import annotations

import io
import os
from typing import Iterator

import torch
from comfy_api.latest import InputImpl

from ..core.animation.driving import DrivingFrames
from ..core.animation.pipeline import AnimationPipeline
from ..core.animation.results import RenderedFrames
from ..core.media.audio import AudioTrack, read_audio
from ..core.media.images import InputError
from ..core.media.size import Size
from ..core.model.container import ModelError
from ..core.model.structures import Keypoints, Motion
from .runtime import check_aspect, check_images, check_one_image, to_output

__all__ = ["clip_of", "driving_audio", "audio_track", "comfy_audio", "extract_keypoints", "estimate_motion", "generate",
           "animate", "animate_rendered", "dense_motion", "video_size"]


def video_size(video) -> Size:
    """The :class:`~tpsmm.core.media.size.Size` of a ComfyUI VIDEO (``VideoInput.get_dimensions`` is width first)."""
    w, h = video.get_dimensions()
    return Size(int(h), int(w))


def _file_of(video) -> str | io.BytesIO | None:
    """The file behind a VIDEO that Load Video made (a path, or the bytes of an upload); ``None`` for frames in memory."""
    return video.get_stream_source() if isinstance(video, InputImpl.VideoFromFile) else None


def _video_batches(video, n: int) -> Iterator[torch.Tensor]:
    """Stream a ComfyUI VIDEO as float IMAGE chunks ``[b,H,W,3]``.

    A video file is decoded one batch at a time (memory: one chunk); videos held in memory
    (``VideoFromComponents``, uploads kept as bytes) fall back to ``get_components()``.
    """
    source = _file_of(video)
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        with DrivingFrames.from_video(source) as clip:
            yield from clip.batches(n)
        return
    images = video.get_components().images
    for start in range(0, images.shape[0], n):
        yield images[start:start + n]


def _capped(batches, cap: int | None):
    """``batches`` (``n -> iterator``) that stop after ``cap`` frames (``None``: all)."""
    def capped(n: int) -> Iterator[torch.Tensor]:
        left = cap
        for batch in batches(n):
            if left is not None and batch.shape[0] >= left:
                yield batch[:left]
                return
            left = None if left is None else left - batch.shape[0]
            yield batch
    return capped


def clip_of(images=None, video=None, *, name: str, max_frames: int = 0) -> DrivingFrames:
    """A :class:`DrivingFrames` over an IMAGE batch or a ComfyUI VIDEO (the one the node's
    :func:`~tpsmm.tpsmm_nodes.runtime.require_one_of` found), cut after ``max_frames`` frames (0: all).

    A VIDEO's frame count comes from its container (``get_frame_count``), never from decoding the clip."""
    cap = int(max_frames) or None
    if video is None:
        return DrivingFrames.from_tensor(check_images(images, name)[:cap], name=name)
    count = int(video.get_frame_count())
    return DrivingFrames.from_batches(_capped(lambda n: _video_batches(video, n), cap),
                                      fps=float(video.get_frame_rate()), size=video_size(video),
                                      frame_count=min(count, cap or count), name=name)


def driving_audio(video) -> AudioTrack | None:
    """The sound of a ComfyUI VIDEO, sample 0 with its first frame (``None`` without sound; damaged sound warns)."""
    source = _file_of(video)
    if source is not None:
        return read_audio(source, name=os.path.basename(source) if isinstance(source, str) else "driving video")
    audio = video.get_components().audio
    return None if audio is None else audio_track(audio)


def audio_track(audio: dict) -> AudioTrack:
    """ComfyUI's AUDIO (``{"waveform": [B,C,S], "sample_rate": int}``; the first batch item) -> :class:`AudioTrack`."""
    waveform = audio.get("waveform") if isinstance(audio, dict) else None
    if not isinstance(waveform, torch.Tensor) or waveform.ndim != 3 or 0 in waveform.shape[:2]:
        raise InputError(f"audio: expected ComfyUI's AUDIO (a waveform [batch, channels, samples] and a sample_rate), "
                         f"got {type(audio).__name__} {tuple(getattr(waveform, 'shape', ()))}")
    return AudioTrack(waveform[0].detach().float().cpu().numpy(), audio.get("sample_rate") or 0)


def comfy_audio(track: AudioTrack | None) -> dict | None:
    """:class:`AudioTrack` -> ComfyUI's AUDIO dict (``waveform`` ``[1,C,S]`` float32 CPU)."""
    if track is None:
        return None
    return {"waveform": torch.from_numpy(track.samples.copy())[None], "sample_rate": track.sample_rate}


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
    return to_output(torch.cat([out.frames for out in animate_rendered(pipeline, source, clip,
                                                                      allow_stretch=allow_stretch)]))


def animate_rendered(pipeline: AnimationPipeline, source, clip: DrivingFrames, *,
                     allow_stretch: bool) -> Iterator[RenderedFrames]:
    """:func:`animate` one batch at a time: the pipeline's :class:`RenderedFrames` (``frames``: float ``[b,Ho,Wo,3]``
    CPU), never the whole clip."""
    source = check_one_image(source, "source")
    if pipeline.options.crop is None and pipeline.options.driving_crop is None:
        check_aspect(Size.of_image(source), clip.size, allow_stretch=allow_stretch)
    yield from pipeline.run(source, clip)
