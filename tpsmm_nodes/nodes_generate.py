"""TPSMM Generate (motion -> frames) and TPSMM Animate (all in one)."""
from __future__ import annotations

from ..core.animation.options import UPSCALE_MODES
from . import steps as pl
from .nodes_motion import BATCH, MODEL, EstimateMotion, motion_options
from .runtime import on_device
from .streamed_video import StreamedAnimation

OUTPUT_SIZE = ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8, "tooltip": "Side of the square output "
               "frames in pixels; 0 = the model size. Larger than the model: see 'upscale'."})
UPSCALE = (list(UPSCALE_MODES), {"default": "flow", "tooltip": "How to reach an output larger than the model: "
           "flow warps the full-resolution source with the motion (sharp; the network's output fills only "
           "occluded parts), bicubic enlarges the model-size frames."})


def size_options(output_size: int, upscale: str) -> dict:
    """The framing fields of :class:`~tpsmm.core.animation.options.AnimationOptions` from the node inputs."""
    return dict(output_size=(int(output_size),) * 2 if output_size else None, upscale=upscale)


class Generate:
    DESCRIPTION = "Renders the source image moved by a motion: one output frame per driving frame."
    CATEGORY = "TPSMM/generate"
    FUNCTION = "generate"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("frames", "occlusion")
    OUTPUT_TOOLTIPS = ("Animated frames [T, S, S, 3] at the model size (or output_size).",
                       "Occlusion masks [T, S, S]: 1 = warped source visible, 0 = inpainted by the network.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": MODEL,
            "source": ("IMAGE", {"tooltip": "The single image to animate (the one the source keypoints came from)."}),
            "motion": ("TPSMM_MOTION", {"tooltip": "Motion from 'TPSMM Estimate Motion'."}),
            "batch_size": BATCH,
        }, "optional": {"output_size": OUTPUT_SIZE, "upscale": UPSCALE}}

    def generate(self, model, source, motion, batch_size=8, output_size=0, upscale="flow"):
        with on_device(model, batch_size=batch_size, with_motion=True, **size_options(output_size, upscale)) as p:
            return pl.generate(p, source, motion)


class Animate:
    DESCRIPTION = "Animates a source image with a driving video in one node (keypoints, motion and generation)."
    CATEGORY = "TPSMM/generate"
    FUNCTION = "animate"
    RETURN_TYPES = ("IMAGE", "VIDEO")
    RETURN_NAMES = ("frames", "video")
    OUTPUT_TOOLTIPS = ("Animated frames [T, S, S, 3] at the model size (or output_size); held in memory, for "
                       "composition (only computed when linked).",
                       "The animation as a VIDEO rendered while it is saved: memory stays that of one batch "
                       "however long the clip (connect Save Video).")

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
            "output_size": OUTPUT_SIZE,
            "upscale": UPSCALE,
        }, "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"}}

    def animate(self, model, source, mode="relative", reference_frame=0, best_frame=False, strength=1.0,
                smoothing="off", smoothing_strength=0.5, fps=30.0, batch_size=8, allow_stretch=False, driving=None,
                driving_video=None, output_size=0, upscale="flow", prompt=None, unique_id=None):
        clip = pl.clip_of(driving, driving_video, name="driving", inputs=("driving", "driving_video"))
        if driving_video is None:
            clip.fps = float(fps)
        options = motion_options(mode, reference_frame, best_frame, strength, smoothing, smoothing_strength)
        run = dict(batch_size=batch_size, **options, **size_options(output_size, upscale))
        video = StreamedAnimation(model=model, source=source, clip=clip, run_options=run, allow_stretch=allow_stretch)
        if not _output_used(prompt, unique_id, 0):
            video.check()
            return None, video            # only the VIDEO is linked: nothing rendered until it is saved
        with on_device(model, **run) as p:
            return pl.animate(p, source, clip, allow_stretch=allow_stretch), video


def _output_used(prompt, unique_id, index: int) -> bool:
    """Whether output ``index`` of node ``unique_id`` feeds another node (True when unknown, e.g. outside ComfyUI)."""
    if not isinstance(prompt, dict) or unique_id is None:
        return True
    return any(isinstance(v, list) and len(v) == 2 and str(v[0]) == str(unique_id) and v[1] == index
               for node in prompt.values() if isinstance(node, dict)
               for v in (node.get("inputs") or {}).values())
