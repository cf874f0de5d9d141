"""A test double of ComfyUI's ``VideoInput`` (VIDEO) with the methods the TPSMM nodes call, for unit tests of
the nodes outside ComfyUI. ComfyUI's own VIDEO objects are exercised in test_render*.py on a real server."""
from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import torch

from tpsmm.core.media.video import VideoReader, probe_video


class FileVideo:
    """A video file (``path``) or frames in memory (``images [T,H,W,3]`` float in [0,1] with ``fps``)."""

    def __init__(self, *, path: str | None = None, images: torch.Tensor | None = None, fps: float | None = None):
        self.path, self.images = path, images
        self.info = probe_video(path) if path is not None else None
        self.fps = float(fps) if fps is not None else self.info.fps

    def get_stream_source(self):
        return self.path

    def get_dimensions(self) -> tuple[int, int]:
        return (self.info.width, self.info.height) if self.path else (self.images.shape[2], self.images.shape[1])

    def get_frame_rate(self) -> Fraction:
        return Fraction(self.fps).limit_denominator(1001)

    def get_components(self):
        if self.path is None:
            images = self.images
        else:
            with VideoReader(self.path) as reader:
                images = torch.cat([torch.from_numpy(c).float().div_(255) for c in reader.batches(16)])
        return SimpleNamespace(images=images, audio=None, frame_rate=self.get_frame_rate(), metadata=None)
