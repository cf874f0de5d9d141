"""TPSMM Extract Keypoints and TPSMM Estimate Motion."""
from __future__ import annotations

from ..core.media.images import InputError
from ..core.animation.smoothing import SMOOTHING_KINDS
from ..core.model.structures import MODES
from . import steps as pl
from .runtime import on_device

MODEL = ("TPSMM_MODEL", {"tooltip": "Model from 'TPSMM Load Checkpoint'."})
BATCH = ("INT", {"default": 8, "min": 1, "max": 256,
                 "tooltip": "Frames per forward pass (lower it if memory runs out)."})


class ExtractKeypoints:
    DESCRIPTION = "Detects the model's keypoints (5 per thin-plate spline) on every image of a batch or video."
    CATEGORY = "TPSMM/motion"
    FUNCTION = "extract"
    RETURN_TYPES = ("TPSMM_KEYPOINTS",)
    RETURN_NAMES = ("keypoints",)
    OUTPUT_TOOLTIPS = ("Keypoints [B, 5K, 2] in [-1, 1]; they only mean something to the model that made them.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": MODEL, "batch_size": BATCH},
                "optional": {
                    "images": ("IMAGE", {"tooltip": "One image (the source) or a batch of frames (the driving "
                                                    "video)."}),
                    "video": ("VIDEO", {"tooltip": "A video to stream-decode instead of images (e.g. from Load "
                                                   "Video)."}),
                }}

    def extract(self, model, batch_size=8, images=None, video=None):
        if (images is None) == (video is None):
            raise InputError("Extract Keypoints: connect exactly one of 'images' or 'video'")
        name = "images" if video is None else "video"
        with on_device(model, batch_size=batch_size) as pipeline:
            return (pl.extract_keypoints(pipeline, pl.clip_of(images, video, name=name), name=name),)


class EstimateMotion:
    DESCRIPTION = ("Moves the source keypoints like the driving keypoints: standard (absolute), relative (motion "
                   "relative to a reference frame) or avd (the AVD network).")
    CATEGORY = "TPSMM/motion"
    FUNCTION = "estimate"
    RETURN_TYPES = ("TPSMM_MOTION",)
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("Where the source keypoints go in each output frame.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": MODEL,
            "source_keypoints": ("TPSMM_KEYPOINTS", {"tooltip": "Keypoints of the single source image."}),
            "driving_keypoints": ("TPSMM_KEYPOINTS", {"tooltip": "Keypoints of the driving frames."}),
            "mode": (list(MODES), {"default": "relative", "tooltip": "standard: copy the driving pose; relative: "
                                   "apply the driving motion to the source pose; avd: needs a checkpoint with an "
                                   "AVD network."}),
            "reference_frame": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip": "Relative mode: the "
                                "driving frame whose pose matches the source."}),
            "best_frame": ("BOOLEAN", {"default": False, "tooltip": "Relative mode: pick the reference frame "
                           "automatically (closest keypoint layout); overrides reference_frame."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 5.0, "step": 0.05, "tooltip": "Relative "
                         "mode: movement multiplier (1 = as trained)."}),
            "smoothing": (list(SMOOTHING_KINDS), {"default": "off", "tooltip": "Remove keypoint jitter of the "
                          "driving video: ema (simple, lags on fast motion) or one-euro (adapts to speed)."}),
            "smoothing_strength": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 0.95, "step": 0.05, "tooltip":
                                   "How much to smooth (0 = none); used when smoothing is not off."}),
            "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 240.0, "step": 1.0, "tooltip": "Frame rate of "
                    "the driving video, for one-euro smoothing (link Get Video Components' fps)."}),
        }}

    def estimate(self, model, source_keypoints, driving_keypoints, mode="relative", reference_frame=0,
                 best_frame=False, strength=1.0, smoothing="off", smoothing_strength=0.5, fps=30.0):
        with on_device(model, **motion_options(mode, reference_frame, best_frame, strength, smoothing,
                                                smoothing_strength)) as pipeline:
            return (pl.estimate_motion(pipeline, source_keypoints, driving_keypoints, fps=fps),)


def motion_options(mode, reference_frame, best_frame, strength, smoothing, smoothing_strength) -> dict:
    """The motion fields of :class:`~tpsmm.core.animation.options.AnimationOptions` from the node inputs
    (the reference frame and strength are relative mode's; other modes ignore the widgets)."""
    relative = mode == "relative"
    return dict(mode=mode, reference_frame=("best" if best_frame else int(reference_frame)) if relative else 0,
                strength=float(strength) if relative else 1.0, smoothing=smoothing,
                smoothing_strength=float(smoothing_strength))
