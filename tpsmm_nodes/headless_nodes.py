"""Stand-ins for ComfyUI's core image/video load and save nodes, used only by ``tpsmm render``.

Same class names, input names, outputs and defaults as ComfyUI v0.8.0 (``LoadImage``, ``LoadVideo``,
``GetVideoComponents``, ``CreateVideo``, ``SaveVideo``, ``SaveImage``, ``PreviewImage``), so one API
workflow runs here and in ComfyUI. Differences: file inputs take any path (relative to the input
folder, or absolute); videos stay files until something needs their frames (``SaveVideo`` and TPSMM
nodes stream them); audio is passed along as "the audio of file X" and copied, not decoded; saved
files carry no prompt metadata. Output names follow ComfyUI (``<prefix>_00001_.mp4``), with the name
reserved by a lock file so parallel ranks never pick the same one.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from ..core.media.image_io import load_image, save_image
from ..core.media.video import VideoReader, VideoWriter, probe_video

__all__ = ["HeadlessContext", "HeadlessVideo", "HeadlessAudio", "HEADLESS_NODES", "reserve_output"]

@dataclass(frozen=True)
class HeadlessContext:
    """Folders of one render: ``input_dir`` (relative file names) and ``output_dir`` (save nodes)."""

    input_dir: str
    output_dir: str


@dataclass(frozen=True)
class HeadlessAudio:
    """AUDIO stand-in: the first audio stream of ``path`` (copied by SaveVideo, never decoded)."""

    path: str


class HeadlessVideo:
    """VIDEO stand-in with the parts of ComfyUI's ``VideoInput`` the TPSMM nodes use.

    Either a file (``path``; frames decoded on demand, one chunk at a time) or frames in memory
    (``images [T,H,W,3]`` float in ``[0,1]`` with ``fps``).
    """

    def __init__(self, *, path: str | None = None, images: torch.Tensor | None = None, fps: float | None = None,
                 audio: HeadlessAudio | None = None):
        self.path, self.images, self.audio = path, images, audio
        self.info = probe_video(path) if path is not None else None
        self.fps = float(fps) if fps is not None else self.info.fps

    def get_stream_source(self):
        return self.path

    def get_dimensions(self) -> tuple[int, int]:
        return (self.info.width, self.info.height) if self.path else (self.images.shape[2], self.images.shape[1])

    def get_frame_rate(self) -> Fraction:
        return Fraction(self.fps).limit_denominator(1001)

    def get_frame_count(self) -> int:
        return self.info.frame_count if self.path else int(self.images.shape[0])

    def iter_frames(self, batch: int = 16):
        """Float ``[b,H,W,3]`` chunks."""
        if self.path is None:
            yield from self.images.split(batch)
            return
        with VideoReader(self.path) as reader:
            for chunk in reader.batches(batch):
                yield torch.from_numpy(chunk).float().div_(255)

    def get_components(self):
        images = torch.cat(list(self.iter_frames())) if self.path else self.images
        return SimpleNamespace(images=images, audio=self.audio, frame_rate=self.get_frame_rate(), metadata=None)


def reserve_output(output_dir: str, prefix: str, ext: str) -> tuple[str, str, str, str]:
    """Pick ``<output_dir>/<sub>/<name>_NNNNN_.<ext>`` like ComfyUI and reserve it.

    Returns ``(path, subfolder, filename, lock)``; delete ``lock`` when done. Refuses prefixes that
    leave the output folder.
    """
    output_dir = os.path.abspath(output_dir)
    sub, name = os.path.split(os.path.normpath(prefix))
    folder = os.path.abspath(os.path.join(output_dir, sub))
    if not name or os.path.commonpath((output_dir, folder)) != output_dir:
        raise ValueError(f"filename_prefix {prefix!r}: must name a file inside the output folder")
    os.makedirs(folder, exist_ok=True)
    pattern = re.compile(rf"^\.?{re.escape(name)}_(\d+)_\.")
    taken = [int(m.group(1)) for f in os.listdir(folder) if (m := pattern.match(f))]
    counter = max(taken, default=0) + 1
    while True:
        filename = f"{name}_{counter:05d}_.{ext}"
        lock = os.path.join(folder, f".{filename}.lock")
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            counter += 1
            continue
        if os.path.exists(os.path.join(folder, filename)):
            os.remove(lock)
            counter += 1
            continue
        return os.path.join(folder, filename), sub.replace(os.sep, "/"), filename, lock


class _Headless:
    def __init__(self, ctx: HeadlessContext):
        self.ctx = ctx

    def path_of(self, name: str, what: str) -> str:
        path = name if os.path.isabs(name) else os.path.join(self.ctx.input_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{what} {name!r} not found (looked for {path})")
        return path


class LoadImage(_Headless):
    CATEGORY, FUNCTION, RETURN_TYPES = "image", "load_image", ("IMAGE", "MASK")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ([], {"image_upload": True})}}  # any file: see VALIDATE_INPUTS

    @classmethod
    def VALIDATE_INPUTS(cls, image):
        return True  # any path; checked when loading

    def load_image(self, image):
        path = self.path_of(image, "image")
        rgb = torch.from_numpy(load_image(path))[None]
        with Image.open(path) as im:
            alpha = np.asarray(im.getchannel("A"), np.float32) / 255 if "A" in im.getbands() else None
        mask = torch.zeros(1, 64, 64) if alpha is None else 1 - torch.from_numpy(alpha)[None]
        return rgb, mask


class LoadVideo(_Headless):
    CATEGORY, FUNCTION, RETURN_TYPES = "image/video", "load_video", ("VIDEO",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"file": ("COMBO", {"options": [], "video_upload": True})}}  # any file

    @classmethod
    def VALIDATE_INPUTS(cls, file):
        return True

    def load_video(self, file):
        return (HeadlessVideo(path=self.path_of(file, "video")),)


class GetVideoComponents(_Headless):
    CATEGORY, FUNCTION = "image/video", "components"
    RETURN_TYPES, RETURN_NAMES = ("IMAGE", "AUDIO", "FLOAT"), ("images", "audio", "fps")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("VIDEO", {"tooltip": "The video to extract components from."})}}

    def components(self, video):
        audio = HeadlessAudio(video.path) if video.path and video.info.has_audio else video.audio
        return video.get_components().images, audio, float(video.fps)


class CreateVideo(_Headless):
    CATEGORY, FUNCTION, RETURN_TYPES = "image/video", "create", ("VIDEO",)

    @classmethod
    def INPUT_TYPES(cls):
        fps = ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0})
        return {"required": {"images": ("IMAGE", {}), "fps": fps},
                "optional": {"audio": ("AUDIO", {})}}

    def create(self, images, fps, audio=None):
        if not isinstance(audio, (HeadlessAudio, type(None))):
            raise ValueError("audio: tpsmm render only passes on the audio of a loaded video file")
        return (HeadlessVideo(images=images, fps=fps, audio=audio),)


class SaveVideo(_Headless):
    CATEGORY, FUNCTION, RETURN_TYPES, OUTPUT_NODE = "image/video", "save_video", (), True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("VIDEO", {}),
                             "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
                             "format": ("COMBO", {"options": ["auto", "mp4"], "default": "auto"}),
                             "codec": ("COMBO", {"options": ["auto", "h264"], "default": "auto"})}}

    def save_video(self, video, filename_prefix="video/ComfyUI", format="auto", codec="auto"):
        path, sub, filename, lock = reserve_output(self.ctx.output_dir, filename_prefix, "mp4")
        try:
            with VideoWriter(path, fps=video.fps, audio_from=video.audio.path if video.audio else None) as writer:
                for chunk in video.iter_frames():
                    writer.write(chunk)
        finally:
            os.remove(lock)
        return {"ui": {"images": [{"filename": filename, "subfolder": sub, "type": "output"}], "animated": [True]}}


class SaveImage(_Headless):
    CATEGORY, FUNCTION, RETURN_TYPES, OUTPUT_NODE = "image", "save_images", (), True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE", {}), "filename_prefix": ("STRING", {"default": "ComfyUI"})}}

    def save_images(self, images, filename_prefix="ComfyUI"):
        results = []
        for image in images:
            path, sub, filename, lock = reserve_output(self.ctx.output_dir, filename_prefix, "png")
            try:
                save_image(path, image)
            finally:
                os.remove(lock)
            results.append({"filename": filename, "subfolder": sub, "type": "output"})
        return {"ui": {"images": results}}


class PreviewImage(_Headless):
    """Previews only make sense in the UI: accepted and ignored."""

    CATEGORY, FUNCTION, RETURN_TYPES, OUTPUT_NODE = "image", "preview", (), True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE", {})}}

    def preview(self, images):
        return {"ui": {}}


HEADLESS_NODES = {c.__name__: c for c in (LoadImage, LoadVideo, GetVideoComponents, CreateVideo, SaveVideo,
                                          SaveImage, PreviewImage)}
