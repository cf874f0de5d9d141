"""TPSMM Generate (motion -> frames) and TPSMM Animate (all in one, with the driving video's sound)."""
from __future__ import annotations

from comfy_api.latest import io

from . import steps as pl
from .nodes_motion import motion_inputs, motion_options
from .runtime import UNLINKED, on_device, one_of_error, require_one_of
from .sockets import Motion, batch_input, model_input, output_size_input, size_options, upscale_input
from .streamed_video import StreamedAnimation

ANIMATE = "TPSMM Animate"


class Generate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TPSMM_Generate", display_name="TPSMM Generate", category="TPSMM/generate",
            description="Renders the source image moved by a motion: one output frame per driving frame.",
            inputs=[model_input(),
                    io.Image.Input("source", tooltip="The single image to animate (the one the source keypoints "
                                                     "came from)."),
                    Motion.Input("motion", tooltip="Motion from 'TPSMM Estimate Motion'."),
                    batch_input(), output_size_input(), upscale_input()],
            outputs=[io.Image.Output("frames", tooltip="Animated frames [T, S, S, 3] at the model size (or "
                                                       "output_size)."),
                     io.Mask.Output("occlusion", tooltip="Occlusion masks [T, S, S]: 1 = warped source visible, "
                                                         "0 = inpainted by the network.")],
        )

    @classmethod
    def execute(cls, model, source, motion, batch_size=8, output_size=0, upscale="flow") -> io.NodeOutput:
        with on_device(model, batch_size=batch_size, with_motion=True, **size_options(output_size, upscale)) as p:
            return io.NodeOutput(*pl.generate(p, source, motion))


class Animate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TPSMM_Animate", display_name=ANIMATE, category="TPSMM/generate",
            description="Animates a source image with a driving video in one node (keypoints, motion and "
                        "generation); the driving video's sound comes along.",
            inputs=[model_input(),
                    io.Image.Input("source", tooltip="The single image to animate."),
                    *motion_inputs(), batch_input(),
                    io.Boolean.Input("allow_stretch", default=False, tooltip="Accept a source and driving video "
                                     "of different aspect ratios (both are stretched to the model's square)."),
                    io.Image.Input("driving", optional=True, tooltip="Driving frames (e.g. Get Video Components "
                                                                     "-> images)."),
                    io.Video.Input("driving_video", optional=True, tooltip="Driving video, streamed frame by frame "
                                   "instead of 'driving'; its sound goes into 'video' and 'audio'."),
                    output_size_input(), upscale_input(),
                    io.Int.Input("max_frames", default=0, min=0, max=1_000_000, optional=True, tooltip="Animate "
                                 "only the first frames of the driving clip (0 = all); the sound is cut with them."),
                    io.Audio.Input("audio", optional=True, tooltip="Sound for 'driving' frames (e.g. Get Video "
                                   "Components -> audio), sample 0 with frame 0; replaces a driving_video's own.")],
            outputs=[io.Image.Output("frames", tooltip="Animated frames [T, S, S, 3] at the model size (or "
                                     "output_size); held in memory, for composition (only computed when linked)."),
                     io.Video.Output("video", tooltip="The animation as a VIDEO rendered while it is saved, with the "
                                     "driving video's sound: memory stays that of one batch however long the clip "
                                     "(connect Save Video)."),
                     io.Audio.Output("audio", tooltip="The driving sound ('audio', else the driving video's), cut or "
                                     "padded to the animated frames: give it to Create Video with 'frames'.")],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, model=None, driving=UNLINKED, driving_video=UNLINKED) -> bool | str:
        linked = {"driving": driving is not UNLINKED, "driving_video": driving_video is not UNLINKED}
        return one_of_error(ANIMATE, linked) or True

    @classmethod
    def execute(cls, model, source, mode="relative", reference_frame=0, best_frame=False, strength=1.0,
                smoothing="off", smoothing_strength=0.5, fps=30.0, batch_size=8, allow_stretch=False, driving=None,
                driving_video=None, output_size=0, upscale="flow", max_frames=0, audio=None) -> io.NodeOutput:
        require_one_of(ANIMATE, {"driving": driving, "driving_video": driving_video})
        clip = pl.clip_of(driving, driving_video, name="driving", max_frames=max_frames)
        if driving_video is None:
            clip.fps = float(fps)
        if audio is not None:
            audio = pl.audio_track(audio)
        elif driving_video is not None:
            audio = pl.driving_audio(driving_video)
        options = motion_options(mode, reference_frame, best_frame, strength, smoothing, smoothing_strength)
        run = dict(batch_size=batch_size, **options, **size_options(output_size, upscale))
        video = StreamedAnimation(model=model, source=source, clip=clip, run_options=run, allow_stretch=allow_stretch,
                                  audio=audio)
        frames = None
        if _output_used(cls.hidden.prompt, cls.hidden.unique_id, 0):
            with on_device(model, **run) as p:
                frames = pl.animate(p, source, clip, allow_stretch=allow_stretch)
        else:
            video.check()               # only VIDEO/AUDIO linked: nothing rendered until the video is saved
        count = video.get_frame_count() if frames is None else frames.shape[0]
        return io.NodeOutput(frames, video, pl.comfy_audio(audio and audio.fitted(count / clip.fps)))


def _output_used(prompt, unique_id, index: int) -> bool:
    """Whether output ``index`` of node ``unique_id`` feeds another node (True when unknown: no prompt given)."""
    if not isinstance(prompt, dict) or unique_id is None:
        return True
    return any(isinstance(v, list) and len(v) == 2 and str(v[0]) == str(unique_id) and v[1] == index
               for node in prompt.values() if isinstance(node, dict)
               for v in (node.get("inputs") or {}).values())
