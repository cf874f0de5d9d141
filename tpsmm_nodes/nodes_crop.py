"""TPSMM Crop and TPSMM Paste Back: animate one region of a large image."""
from __future__ import annotations

from comfy_api.latest import io

from ..core.media.crop import CropBox, crop, paste_back
from . import runtime as rt
from .sockets import CropBox as CropBoxSocket

PIXELS = 16384  # ComfyUI's MAX_RESOLUTION


def _int(name: str, tooltip: str, default: int, minimum: int) -> io.Input:
    return io.Int.Input(name, default=default, min=minimum, max=PIXELS, step=1, tooltip=tooltip)


class Crop(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TPSMM_Crop", display_name="TPSMM Crop", category="TPSMM/image",
            description="Cuts a rectangle out of images (e.g. a face of a large photo) to animate it at the model size.",
            inputs=[io.Image.Input("images", tooltip="Images to crop (one photo or a batch of frames)."),
                    _int("x", "Left edge in pixels.", 0, 0),
                    _int("y", "Top edge in pixels.", 0, 0),
                    _int("width", "Width in pixels (a square region animates best).", 256, 1),
                    _int("height", "Height in pixels.", 256, 1),
                    CropBoxSocket.Input("box", optional=True, tooltip="A box from 'TPSMM Find Face'; when connected "
                                        "it replaces x, y, width and height (a box past the image border is padded "
                                        "with the edge pixels).")],
            outputs=[io.Image.Output("images", tooltip="The cropped region of every image."),
                     CropBoxSocket.Output("box", tooltip="The rectangle, for 'TPSMM Paste Back'.")],
        )

    @classmethod
    def execute(cls, images, x=0, y=0, width=256, height=256, box=None) -> io.NodeOutput:
        images = rt.check_images(images, "images")
        if box is None:
            box = CropBox(x=x, y=y, w=width, h=height)
            box.check(images.shape[2], images.shape[1])
        return io.NodeOutput(crop(images, box).clone(), box)


class PasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TPSMM_PasteBack", display_name="TPSMM Paste Back", category="TPSMM/image",
            description="Blends animated frames back into the rectangle they were cropped from, with soft edges.",
            inputs=[io.Image.Input("image", tooltip="The full, uncropped still image (one image)."),
                    io.Image.Input("frames", tooltip="Animated frames of the cropped region (any size; resized to "
                                                     "the box)."),
                    CropBoxSocket.Input("box", tooltip="The rectangle from 'TPSMM Crop'."),
                    io.Int.Input("feather", default=16, min=0, max=512, tooltip="Width of the soft blend at the box "
                                 "edges, in pixels (0 = hard edge).")],
            outputs=[io.Image.Output("frames", tooltip="Full-size frames [T, H, W, 3]: the still image with the "
                                                       "animated region.")],
        )

    @classmethod
    def execute(cls, image, frames, box, feather=16) -> io.NodeOutput:
        image, frames = rt.check_images(image, "image"), rt.check_images(frames, "frames")
        return io.NodeOutput(rt.to_output(paste_back(image, frames, box, feather=feather)))
