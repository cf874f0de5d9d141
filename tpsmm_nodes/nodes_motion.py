"""TPSMM Extract Keypoints and TPSMM Estimate Motion."""
from __future__ import annotations

from comfy_api.latest import io

from ..core.animation.smoothing import SMOOTHING_KINDS
from ..core.model.structures import MODES
from . import steps as pl
from .runtime import UNLINKED, on_device, one_of_error, require_one_of
from .sockets import Keypoints, Motion, batch_input, model_input

EXTRACT = "TPSMM Extract Keypoints"


def motion_inputs() -> list[io.Input]:
    """The motion-transfer widgets (shared by TPSMM Estimate Motion and TPSMM Animate)."""
    return [
        io.Combo.Input("mode", options=list(MODES), default="relative", tooltip="standard: copy the driving pose; "
                       "relative: apply the driving motion to the source pose; avd: needs a checkpoint with an AVD "
                       "network."),
        io.Int.Input("reference_frame", default=0, min=0, max=100000, tooltip="Relative mode: the driving frame "
                     "whose pose matches the source."),
        io.Boolean.Input("best_frame", default=False, tooltip="Relative mode: pick the reference frame "
                         "automatically (closest keypoint layout); overrides reference_frame."),
        io.Float.Input("strength", default=1.0, min=0.0, max=5.0, step=0.05, tooltip="Relative mode: movement "
                       "multiplier (1 = as trained)."),
        io.Combo.Input("smoothing", options=list(SMOOTHING_KINDS), default="off", tooltip="Remove keypoint jitter "
                       "of the driving video: ema (simple, lags on fast motion) or one-euro (adapts to speed)."),
        io.Float.Input("smoothing_strength", default=0.5, min=0.0, max=0.95, step=0.05, tooltip="How much to "
                       "smooth (0 = none); used when smoothing is not off."),
        io.Float.Input("fps", default=30.0, min=1.0, max=240.0, step=1.0, tooltip="Frame rate of the driving "
                       "video, for one-euro smoothing (link Get Video Components' fps)."),
    ]


def motion_options(mode, reference_frame, best_frame, strength, smoothing, smoothing_strength) -> dict:
    """The motion fields of :class:`~tpsmm.core.animation.options.AnimationOptions` from the node inputs
    (the reference frame and strength are relative mode's; other modes ignore the widgets)."""
    relative = mode == "relative"
    return dict(mode=mode, reference_frame=("best" if best_frame else int(reference_frame)) if relative else 0,
                strength=float(strength) if relative else 1.0, smoothing=smoothing,
                smoothing_strength=float(smoothing_strength))


class ExtractKeypoints(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TPSMM_ExtractKeypoints", display_name=EXTRACT, category="TPSMM/motion",
            description="Detects the model's keypoints (5 per thin-plate spline) on every image of a batch or video.",
            inputs=[model_input(), batch_input(),
                    io.Image.Input("images", optional=True, tooltip="One image (the source) or a batch of frames "
                                                                   "(the driving video)."),
                    io.Video.Input("video", optional=True, tooltip="A video to stream-decode instead of images "
                                                                  "(e.g. from Load Video).")],
            outputs=[Keypoints.Output("keypoints", tooltip="Keypoints [B, 5K, 2] in [-1, 1]; they only mean "
                                                           "something to the model that made them.")],
        )

    @classmethod
    def validate_inputs(cls, model=None, images=UNLINKED, video=UNLINKED) -> bool | str:
        return one_of_error(EXTRACT, {"images": images is not UNLINKED, "video": video is not UNLINKED}) or True

    @classmethod
    def execute(cls, model, batch_size=8, images=None, video=None) -> io.NodeOutput:
        name = require_one_of(EXTRACT, {"images": images, "video": video})
        with on_device(model, batch_size=batch_size) as pipeline:
            return io.NodeOutput(pl.extract_keypoints(pipeline, pl.clip_of(images, video, name=name), name=name))


class EstimateMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TPSMM_EstimateMotion", display_name="TPSMM Estimate Motion", category="TPSMM/motion",
            description="Moves the source keypoints like the driving keypoints: standard (absolute), relative "
                        "(motion relative to a reference frame) or avd (the AVD network).",
            inputs=[model_input(),
                    Keypoints.Input("source_keypoints", tooltip="Keypoints of the single source image."),
                    Keypoints.Input("driving_keypoints", tooltip="Keypoints of the driving frames."),
                    *motion_inputs()],
            outputs=[Motion.Output("motion", tooltip="Where the source keypoints go in each output frame.")],
        )

    @classmethod
    def execute(cls, model, source_keypoints, driving_keypoints, mode="relative", reference_frame=0,
                best_frame=False, strength=1.0, smoothing="off", smoothing_strength=0.5, fps=30.0) -> io.NodeOutput:
        with on_device(model, **motion_options(mode, reference_frame, best_frame, strength, smoothing,
                                                smoothing_strength)) as pipeline:
            return io.NodeOutput(pl.estimate_motion(pipeline, source_keypoints, driving_keypoints, fps=fps))
