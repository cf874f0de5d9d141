"""TPSMM Draw Keypoints and TPSMM Visualize Motion."""
from __future__ import annotations

from ..core.media import visualize as vis
from . import steps as pl
from . import runtime as rt
from .nodes_motion import BATCH, MODEL


class DrawKeypoints:
    DESCRIPTION = "Draws keypoints on images, one colour per thin-plate spline (5 keypoints each)."
    CATEGORY = "TPSMM/visualize"
    FUNCTION = "draw"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("A copy of the images with the keypoints drawn on them.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Images to draw on (any size; usually the ones the keypoints came from)."}),
            "keypoints": ("TPSMM_KEYPOINTS", {"tooltip": "One set per image, or one set for all images."}),
            "radius": ("INT", {"default": 0, "min": 0, "max": 64, "tooltip": "Dot radius in pixels (0 = automatic)."}),
        }}

    def draw(self, images, keypoints, radius=0):
        images = rt.check_images(images, "images")
        return (rt.to_output(vis.draw_keypoints(images, keypoints.value, radius=radius or None)),)


class VisualizeMotion:
    DESCRIPTION = ("Shows the dense motion the model derives from a motion: coloured flow (hue = direction, "
                   "saturation = speed) and occlusion (white = warped source, black = inpainted).")
    CATEGORY = "TPSMM/visualize"
    FUNCTION = "visualize"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("flow", "occlusion")
    OUTPUT_TOOLTIPS = ("Flow picture per output frame [T, S, S, 3].",
                       "Occlusion picture per output frame [T, S, S, 3].")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": MODEL,
            "motion": ("TPSMM_MOTION", {"tooltip": "Motion from 'TPSMM Estimate Motion'."}),
            "max_motion": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 2.0, "step": 0.01, "tooltip": "Displacement "
                           "(2 = image width) shown fully saturated; 0 = the largest in the clip."}),
            "batch_size": BATCH,
        }}

    def visualize(self, model, motion, max_motion=0.0, batch_size=8):
        with rt.on_device(model, batch_size=batch_size, with_motion=True) as pipeline:
            deformation, occlusion = pl.dense_motion(pipeline, motion)
        size = model.size
        return (vis.flow_to_rgb(deformation, size=size, max_magnitude=max_motion or None),
                vis.occlusion_to_rgb(occlusion, size=size))
