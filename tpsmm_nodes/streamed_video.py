"""A VIDEO whose frames are rendered while it is consumed: TPSMM Animate's flat-memory output.

Nothing is rendered when the node runs; the animation pipeline runs (decode -> render, batch by batch)
only when a consumer asks for the frames: ``save_to`` (Save Video) encodes each batch as soon as it is
rendered, so a 600-frame clip needs the memory of one
batch, not of 600 frames. ``get_components`` (e.g. Get Video Components) renders everything into an
IMAGE like the eager output. Inside ComfyUI the class derives from ``comfy_api``'s ``VideoInput`` so every
VIDEO consumer accepts it; outside ComfyUI it is a plain class with the same methods.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from fractions import Fraction
from typing import Iterator

import torch

__all__ = ["StreamedAnimation"]

try:   # inside ComfyUI
    from comfy_api.latest import Input as _Input, Types as _Types

    _Base, _Components = _Input.Video, _Types.VideoComponents
except ImportError:   # plain Python: no VideoInput base to derive from
    _Base, _Components = object, None


class StreamedAnimation(_Base):
    """A VIDEO of the animation of ``source`` by ``clip``, rendered on demand, one batch at a time.

    Args:
        model: the ``TPSMM_MODEL`` handle (a :class:`~tpsmm.tpsmm_nodes.runtime.PlacedModel`).
        source: the source IMAGE ``[1,H,W,3]``.
        clip: the driving :class:`~tpsmm.core.animation.pipeline.DrivingFrames` (re-iterable, streamed).
        run_options: keyword arguments of :func:`~tpsmm.tpsmm_nodes.runtime.on_device` (batch size, options).
        allow_stretch: accept different source/driving aspect ratios.
    """

    def __init__(self, *, model, source: torch.Tensor, clip, run_options: dict, allow_stretch: bool):
        self.model, self.source, self.clip = model, source, clip
        self.run_options, self.allow_stretch = dict(run_options), bool(allow_stretch)
        self.fps = float(clip.fps)

    def check(self) -> None:
        """The checks the pipeline would make on its first batch, made now so the error names TPSMM Animate."""
        from ..core.model import ModelError
        from ..core.media.size import Size
        from .runtime import check_aspect, check_images

        source = check_images(self.source, "source")
        if source.shape[0] != 1:
            raise ValueError(f"source: expected one image, got a batch of {source.shape[0]} "
                             "(pick one with Image From Batch)")
        if self.run_options.get("mode") == "avd" and self.model.tpsmm.avd_network is None:
            raise ModelError("mode 'avd': this checkpoint has no AVD network (train one with `tpsmm train-avd`, "
                             "or use mode 'relative')")
        if not self.run_options.get("crop") and not self.run_options.get("driving_crop"):
            check_aspect(Size.of_image(source), self.clip.size, allow_stretch=self.allow_stretch)

    def batches(self) -> Iterator[torch.Tensor]:
        """Float ``[b,Ho,Wo,3]`` CPU batches, rendered one at a time."""
        from . import steps as pipeline
        from .runtime import on_device

        with on_device(self.model, **self.run_options) as p:
            yield from pipeline.animate_batches(p, self.source, self.clip, allow_stretch=self.allow_stretch)

    def get_dimensions(self) -> tuple[int, int]:
        size = self.run_options.get("output_size")
        if size:
            return int(size[1]), int(size[0])
        side = self.model.tpsmm.config.image_size
        return side, side

    def get_frame_count(self) -> int:
        if self.clip.frame_count is None:
            return sum(b.shape[0] for b in self.clip.batches(64))
        return int(self.clip.frame_count)

    def get_frame_rate(self) -> Fraction:
        return Fraction(self.fps).limit_denominator(1001)

    def get_duration(self) -> float:
        return self.get_frame_count() / self.fps

    def get_container_format(self) -> str:
        return "mp4"

    def get_components(self):
        images = torch.cat(list(self.batches()))
        if _Components is None:
            from types import SimpleNamespace

            return SimpleNamespace(images=images, audio=None, frame_rate=self.get_frame_rate(), metadata=None)
        return _Components(images=images, audio=None, frame_rate=self.get_frame_rate())

    def get_stream_source(self):
        raise NotImplementedError("a TPSMM streamed animation has no file; save it or get its components")

    def save_to(self, path, format=None, codec=None, metadata=None) -> None:
        """Encode to an .mp4 (h264) at ``path`` (a file name or a binary file object), one batch at a time."""
        from ..core.media.video_writer import VideoWriter

        if isinstance(path, (str, os.PathLike)):
            with VideoWriter(path, fps=self.fps, overwrite=True) as writer:
                for frames in self.batches():
                    writer.write(frames)
            return
        with tempfile.TemporaryDirectory(prefix="tpsmm-video-") as tmp:
            self.save_to(os.path.join(tmp, "video.mp4"))
            with open(os.path.join(tmp, "video.mp4"), "rb") as f:
                shutil.copyfileobj(f, path)
