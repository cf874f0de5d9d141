"""TPSMM Find Face: the training-style crop box around a face of a photo, or one still box for a driving clip."""
from __future__ import annotations

import os

import torch
from comfy_api.latest import InputImpl, io

from ..core.media.crop import CropBox
from ..core.face.framing import FRAMING_SCALE, find_face
from ..core.face.detect import FaceError, load_face_detector
from ..core.face.track import DRIVING_STRIDE, driving_box
from ..core.media.video import VideoReader
from . import comfy_compat as cc
from . import runtime as rt
from .runtime import UNLINKED
from .sockets import CropBox as CropBoxSocket

PREVIEW_COLOUR = (0.1, 1.0, 0.2)
FIND_FACE = "TPSMM Find Face"


def draw_box(image: torch.Tensor, box: CropBox, *, thickness: int = 0) -> torch.Tensor:
    """A copy of ``image`` ``[H,W,3]`` with the part of ``box`` inside it outlined (thickness 0 = automatic)."""
    out = image.clone()
    height, width = out.shape[:2]
    t = thickness or max(2, round(max(height, width) / 300))
    part = box.clip(width, height)
    colour = torch.tensor(PREVIEW_COLOUR, dtype=out.dtype)
    x0, y0, x1, y1 = part.x, part.y, part.x + part.w, part.y + part.h
    out[y0:y1, x0:min(x0 + t, x1)] = colour
    out[y0:y1, max(x1 - t, x0):x1] = colour
    out[y0:min(y0 + t, y1), x0:x1] = colour
    out[max(y1 - t, y0):y1, x0:x1] = colour
    return out


def _video_frames(video):
    """A ComfyUI VIDEO as float IMAGE chunks (a file is streamed, frames in memory are split)."""
    source = video.get_stream_source() if isinstance(video, InputImpl.VideoFromFile) else None
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        with VideoReader(source) as reader:
            for chunk in reader.batches(16):
                yield torch.from_numpy(chunk)
        return
    yield from video.get_components().images.split(16)


class FindFace(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TPSMM_FindFace", display_name=FIND_FACE, category="TPSMM/image",
            description="Finds a face and frames it the way the vox/ted models were trained (square, with hair and "
                        "shoulders around it). One image: the box around its face. Several frames or a video: one "
                        "still box for the whole clip that keeps the moving face in view. Feed the box to 'TPSMM "
                        "Crop' and 'TPSMM Paste Back'. Needs yunet_final.pth in models/facedetection (downloaded by "
                        "kornia on first use when online).",
            inputs=[io.Int.Input("face_index", default=-1, min=-1, max=999, tooltip="Which face: -1 = the largest, "
                                 "0 = the leftmost, 1 = the next to its right, ... (for a clip: in its first frame "
                                 "with a face)."),
                    io.Float.Input("scale", default=FRAMING_SCALE, min=1.0, max=4.0, step=0.05, tooltip="Box side in "
                                   "face sizes; 1.6 matches the vox/ted training crops."),
                    io.Image.Input("image", optional=True, tooltip="A photo (one image) or the frames of a driving "
                                                                   "clip."),
                    io.Video.Input("video", optional=True, tooltip="A driving video (streamed; one box for the whole "
                                                                   "clip).")],
            outputs=[CropBoxSocket.Output("box", tooltip="The square crop box (may extend past the image border: Crop pads, "
                                                   "Paste Back pastes the inside part)."),
                     io.Image.Output("preview", tooltip="The (first) image with the box drawn on it.")],
        )

    @classmethod
    def validate_inputs(cls, image=UNLINKED, video=UNLINKED) -> bool | str:
        """(Neither linked is reported when the node runs: ComfyUI validates only the inputs a prompt has.)"""
        return rt.one_of_error(FIND_FACE, {"image": image is not UNLINKED, "video": video is not UNLINKED}) or True

    @classmethod
    def execute(cls, face_index=-1, scale=FRAMING_SCALE, image=None, video=None) -> io.NodeOutput:
        rt.require_one_of(FIND_FACE, {"image": image, "video": video})
        index = None if face_index < 0 else int(face_index)
        detector = load_face_detector(search_dirs=cc.face_model_dirs())
        if image is not None:
            image = rt.check_images(image, "image")
            first = image[0]
            if image.shape[0] == 1:
                box = find_face(first, index=index, scale=scale, detector=detector, what="Find Face: image")
            else:
                box = driving_box(image, index=index, scale=scale, detector=detector, stride=DRIVING_STRIDE,
                                  what="Find Face: image frames")
        else:
            first = next(iter(_video_frames(video)), None)
            if first is None:
                raise FaceError("Find Face: video: the video has no frames")
            first = first[0].float() / 255 if first.dtype == torch.uint8 else first[0]
            box = driving_box(_video_frames(video), index=index, scale=scale, detector=detector,
                              what="Find Face: video")
        return io.NodeOutput(box, rt.to_output(draw_box(first.float(), box)[None]))
