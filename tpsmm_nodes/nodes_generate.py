"""TPSMM Generate (motion -> frames) and TPSMM Animate (all in one)."""
from __future__ import annotations

from . import pipeline as pl
from .nodes_motion import BATCH, MODEL, EstimateMotion
from .runtime import on_device


class Generate:
    DESCRIPTION = "Renders the source image moved by a motion: one output frame per driving frame."
    CATEGORY = "TPSMM/generate"
    FUNCTION = "generate"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("frames", "occlusion")
    OUTPUT_TOOLTIPS = ("Animated frames [T, S, S, 3] at the model size.",
                       "Occlusion masks [T, S, S]: 1 = warped source visible, 0 = inpainted by the network.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": MODEL,
            "source": ("IMAGE", {"tooltip": "The single image to animate (the one the source keypoints came from)."}),
            "motion": ("TPSMM_MOTION", {"tooltip": "Motion from 'TPSMM Estimate Motion'."}),
            "batch_size": BATCH,
        }}

    def generate(self, model, source, motion, batch_size=8):
        with on_device(model, batch_size=batch_size) as engine:
            return pl.generate(engine, source, motion)


class Animate:
    DESCRIPTION = "Animates a source image with a driving video in one node (keypoints, motion and generation)."
    CATEGORY = "TPSMM/generate"
    FUNCTION = "animate"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("Animated frames [T, S, S, 3] at the model size.",)

    @classmethod
    def INPUT_TYPES(cls):
        motion = EstimateMotion.INPUT_TYPES()["required"]
        return {"required": {
            "model": MODEL,
            "source": ("IMAGE", {"tooltip": "The single image to animate."}),
            **{k: motion[k] for k in ("mode", "reference_frame", "best_frame", "strength", "smoothing",
                                       "smoothing_strength", "fps")},
            "batch_size": BATCH,
            "allow_stretch": ("BOOLEAN", {"default": False, "tooltip": "Accept a source and driving video of "
                              "different aspect ratios (both are stretched to the model's square)."}),
        }, "optional": {
            "driving": ("IMAGE", {"tooltip": "Driving frames (e.g. Get Video Components -> images)."}),
            "driving_video": ("VIDEO", {"tooltip": "Driving video, streamed frame by frame instead of 'driving'."}),
        }}

    def animate(self, model, source, mode="relative", reference_frame=0, best_frame=False, strength=1.0,
                smoothing="off", smoothing_strength=0.5, fps=30.0, batch_size=8, allow_stretch=False, driving=None,
                driving_video=None):
        with on_device(model, batch_size=batch_size) as engine:
            return (pl.animate(engine, source, driving=driving, video=driving_video, mode=mode,
                               reference_frame=reference_frame, best_frame=best_frame, strength=strength,
                               smoothing=smoothing, smoothing_strength=smoothing_strength, fps=fps,
                               allow_stretch=allow_stretch),)
