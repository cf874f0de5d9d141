"""A VIDEO whose frames are rendered while it is consumed: TPSMM Animate's flat-memory output.

Nothing is rendered when the node runs; the animation pipeline runs (decode -> render, batch by batch)
only when a consumer asks for the frames: ``save_to`` (Save Video) encodes each batch as soon as it is
rendered, so a 600-frame clip needs the memory of one batch, not of 600 frames, and writes the driving
clip's sound next to it (cut or padded to the rendered frames) and Save Video's metadata (the prompt and
workflow) the way ComfyUI's own videos carry them. ``get_components`` (e.g. Get Video Components) renders
everything into an IMAGE like the eager output. Frame count, size and rate come from the options and the
driving clip's container: nothing is decoded to answer them.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from fractions import Fraction
from typing import Iterator

import torch
from comfy_api.latest import Input, Types

from ..core.media.audio import AudioTrack
from ..core.media.images import InputError
from ..core.media.video_writer import VideoWriter
from ..core.animation.motion import require_avd_network
from ..core.animation.results import RenderedFrames
from ..core.animation.writing import write_rendered
from ..core.media.size import Size
from .runtime import check_aspect, check_one_image, on_device
from . import steps

__all__ = ["StreamedAnimation"]


class StreamedAnimation(Input.Video):
    """A VIDEO of the animation of ``source`` by ``clip``, rendered on demand, one batch at a time.

    Args:
        model: the ``TPSMM_MODEL`` handle (a :class:`~tpsmm.tpsmm_nodes.runtime.PlacedModel`).
        source: the source IMAGE ``[1,H,W,3]``.
        clip: the driving :class:`~tpsmm.core.animation.driving.DrivingFrames` (re-iterable, streamed, frame count known).
        run_options: keyword arguments of :func:`~tpsmm.tpsmm_nodes.runtime.on_device` (batch size, options).
        allow_stretch: accept different source/driving aspect ratios.
        audio: the driving clip's sound (sample 0 with its first frame), or ``None``.
    """

    def __init__(self, *, model, source: torch.Tensor, clip, run_options: dict, allow_stretch: bool,
                 audio: AudioTrack | None = None):
        self.model, self.source, self.clip, self.audio = model, source, clip, audio
        self.run_options, self.allow_stretch = dict(run_options), bool(allow_stretch)
        self.fps = float(clip.fps)

    def check(self) -> None:
        """The checks the pipeline would make on its first batch, made now so the error names TPSMM Animate."""
        source = check_one_image(self.source, "source")
        if self.run_options.get("mode") == "avd":
            require_avd_network(self.model.tpsmm.avd_network)
        if not self.run_options.get("crop") and not self.run_options.get("driving_crop"):
            check_aspect(Size.of_image(source), self.clip.size, allow_stretch=self.allow_stretch)

    def batches(self) -> Iterator[RenderedFrames]:
        """The pipeline's rendered batches (``frames``: float ``[b,Ho,Wo,3]`` CPU), rendered one at a time."""
        with on_device(self.model, **self.run_options) as p:
            yield from steps.animate_rendered(p, self.source, self.clip, allow_stretch=self.allow_stretch)

    def get_dimensions(self) -> tuple[int, int]:
        size = self.run_options.get("output_size")
        if size:
            return int(size[1]), int(size[0])
        side = self.model.tpsmm.config.image_size
        return side, side

    def get_frame_count(self) -> int:
        return int(self.clip.frame_count)

    def get_frame_rate(self) -> Fraction:
        return Fraction(self.fps).limit_denominator(1001)

    def get_duration(self) -> float:
        return self.get_frame_count() / self.fps

    def get_container_format(self) -> str:
        return "mp4"

    def get_components(self) -> Types.VideoComponents:
        images = torch.cat([out.frames for out in self.batches()])
        audio = None if self.audio is None else self.audio.fitted(images.shape[0] / self.fps)
        return Types.VideoComponents(images=images, audio=steps.comfy_audio(audio), frame_rate=self.get_frame_rate())

    def save_to(self, path, format=Types.VideoContainer.AUTO, codec=Types.VideoCodec.AUTO, metadata=None) -> None:
        """Encode to an mp4 (h264, aac sound) at ``path`` (a file name or a binary file object), one batch at a time.

        ``metadata`` (Save Video's ``prompt`` and ``workflow``) becomes container tags, each value as JSON, exactly
        as ComfyUI's own videos store them. Formats and codecs other than mp4 / h264 (or auto) are refused."""
        if str(getattr(format, "value", format)) not in ("auto", "mp4"):
            raise InputError(f"TPSMM Animate: its video is written as mp4, not {getattr(format, 'value', format)!r}")
        if str(getattr(codec, "value", codec)) not in ("auto", "h264"):
            raise InputError(f"TPSMM Animate: its video is encoded with h264, not {getattr(codec, 'value', codec)!r}")
        if not isinstance(path, (str, os.PathLike)):
            with tempfile.TemporaryDirectory(prefix="tpsmm-video-") as tmp:
                self.save_to(os.path.join(tmp, "video.mp4"), metadata=metadata)
                with open(os.path.join(tmp, "video.mp4"), "rb") as f:
                    shutil.copyfileobj(f, path)
            return
        tags = {key: json.dumps(value) for key, value in (metadata or {}).items()}
        with VideoWriter(path, fps=self.fps, overwrite=True, audio=self.audio, metadata=tags) as writer:
            write_rendered(self.batches(), [("frames", writer)])
