"""TPSMM Draw Keypoints and TPSMM Visualize Motion."""
from __future__ import annotations

from comfy_api.latest import io

from ..core.media import visualize as vis
from . import steps as pl
from . import runtime as rt
from .sockets import Keypoints, Motion, batch_input, model_input


class DrawKeypoints(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TPSMM_DrawKeypoints", display_name="TPSMM Draw Keypoints", category="TPSMM/visualize",
            description="Draws keypoints on images, one colour per thin-plate spline (5 keypoints each).",
            inputs=[io.Image.Input("images", tooltip="Images to draw on (any size; usually the ones the keypoints "
                                                     "came from)."),
                    Keypoints.Input("keypoints", tooltip="One set per image, or one set for all images."),
                    io.Int.Input("radius", default=0, min=0, max=64, tooltip="Dot radius in pixels (0 = automatic).")],
            outputs=[io.Image.Output("images", tooltip="A copy of the images with the keypoints drawn on them.")],
        )

    @classmethod
    def execute(cls, images, keypoints, radius=0) -> io.NodeOutput:
        images = rt.check_images(images, "images")
        return io.NodeOutput(rt.to_output(vis.draw_keypoints(images, keypoints.value, radius=radius or None)))


class VisualizeMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TPSMM_VisualizeMotion", display_name="TPSMM Visualize Motion", category="TPSMM/visualize",
            description="Shows the dense motion the model derives from a motion: coloured flow (hue = direction, "
                        "saturation = speed) and occlusion (white = warped source, black = inpainted).",
            inputs=[model_input(),
                    Motion.Input("motion", tooltip="Motion from 'TPSMM Estimate Motion'."),
                    io.Float.Input("max_motion", default=0.0, min=0.0, max=2.0, step=0.01, tooltip="Displacement "
                                   "(2 = image width) shown fully saturated; 0 = the largest in the clip."),
                    batch_input()],
            outputs=[io.Image.Output("flow", tooltip="Flow picture per output frame [T, S, S, 3]."),
                     io.Image.Output("occlusion", tooltip="Occlusion picture per output frame [T, S, S, 3].")],
        )

    @classmethod
    def execute(cls, model, motion, max_motion=0.0, batch_size=8) -> io.NodeOutput:
        with rt.on_device(model, batch_size=batch_size, with_motion=True) as pipeline:
            deformation, occlusion = pl.dense_motion(pipeline, motion)
        size = model.size
        return io.NodeOutput(vis.flow_to_rgb(deformation, size=size, max_magnitude=max_motion or None),
                             vis.occlusion_to_rgb(occlusion, size=size))
