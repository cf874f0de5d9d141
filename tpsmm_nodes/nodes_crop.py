"""TPSMM Crop and TPSMM Paste Back: animate one region of a large image."""
from __future__ import annotations

from ..core.media.crop import CropBox, crop, paste_back
from . import runtime as rt

PIXELS = 16384  # ComfyUI's MAX_RESOLUTION


def _int(tooltip: str, default: int, minimum: int):
    return ("INT", {"default": default, "min": minimum, "max": PIXELS, "step": 1, "tooltip": tooltip})


class Crop:
    DESCRIPTION = "Cuts a rectangle out of images (e.g. a face of a large photo) to animate it at the model size."
    CATEGORY = "TPSMM/image"
    FUNCTION = "crop"
    RETURN_TYPES = ("IMAGE", "TPSMM_CROP_BOX")
    RETURN_NAMES = ("images", "box")
    OUTPUT_TOOLTIPS = ("The cropped region of every image.", "The rectangle, for 'TPSMM Paste Back'.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Images to crop (one photo or a batch of frames)."}),
            "x": _int("Left edge in pixels.", 0, 0),
            "y": _int("Top edge in pixels.", 0, 0),
            "width": _int("Width in pixels (a square region animates best).", 256, 1),
            "height": _int("Height in pixels.", 256, 1),
        }, "optional": {
            "box": ("TPSMM_CROP_BOX", {"tooltip": "A box from 'TPSMM Find Face'; when connected it replaces x, y, "
                    "width and height (a box past the image border is padded with the edge pixels)."}),
        }}

    def crop(self, images, x=0, y=0, width=256, height=256, box=None):
        images = rt.check_images(images, "images")
        if box is None:
            box = CropBox(x=x, y=y, w=width, h=height)
            box.check(images.shape[2], images.shape[1])
        return crop(images, box).clone(), box


class PasteBack:
    DESCRIPTION = "Blends animated frames back into the rectangle they were cropped from, with soft edges."
    CATEGORY = "TPSMM/image"
    FUNCTION = "paste"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("Full-size frames [T, H, W, 3]: the still image with the animated region.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "The full, uncropped still image (one image)."}),
            "frames": ("IMAGE", {"tooltip": "Animated frames of the cropped region (any size; resized to the box)."}),
            "box": ("TPSMM_CROP_BOX", {"tooltip": "The rectangle from 'TPSMM Crop'."}),
            "feather": ("INT", {"default": 16, "min": 0, "max": 512, "tooltip": "Width of the soft blend at the "
                        "box edges, in pixels (0 = hard edge)."}),
        }}

    def paste(self, image, frames, box, feather=16):
        image, frames = rt.check_images(image, "image"), rt.check_images(frames, "frames")
        return (rt.to_output(paste_back(image, frames, box, feather=feather)),)
