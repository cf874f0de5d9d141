"""``tpsmm animate``: animate a source image with a driving video, streaming frames in and out.

The driving clip is decoded and the result encoded batch by batch (memory does not grow with the clip
length); the output is written to a temporary file and renamed on success, so an error or Ctrl-C
leaves nothing behind. See ``tpsmm animate --help`` for the options.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
import warnings

import torch

from ..animation.driving import DrivingFrames
from ..animation.animator import load_model
from ..animation.options import AnimationOptions, UPSCALE_MODES
from ..animation.pipeline import AnimationPipeline, Hooks
from ..animation.smoothing import SMOOTHING_KINDS
from ..animation.writing import write_rendered
from ..media.image_io import load_image
from ..media.errors import FieldError
from ..media import size as sizes
from .face_args import EPILOG as FACE_EPILOG
from .face_args import FACE, add_face_arguments, crop_arg, resolve_crops
from ..media.outputs import check_outputs
from ..media.audio_copy import AUDIO_CODEC
from ..media.video import VideoWriter, output_kind
from ..model.structures import MODES
from ..device import DEVICE_CHOICES, DTYPE_NAMES, resolve_device, resolve_dtype
from .animate_batch import batch_options, run_batch
from ..backends.choice import BACKENDS

__all__ = ["register", "run", "parse_size", "parse_reference", "options_from_args", "FLAGS"]

EPILOG = """\
precision: --dtype bfloat16/float16 run the convolutions in half precision (autocast) and keep the
  TPS solve, heatmaps, softmax, warps and blending in float32. On the CPU, bfloat16 pays off only
  with native support (AVX512-BF16 or AMX: recent Xeon, AMD Zen 4 and later); elsewhere it would be
  emulated ~100x slower, so float32 is used with a warning. float16 on the CPU means bfloat16 where
  that is native, else float32.
high resolution: --output-size larger than the model size warps the full-resolution source with the
  upsampled motion and uses the (upscaled) generator output only where the source is occluded
  (--upscale flow, default); --upscale bicubic just enlarges the model-size frames.
motion: --reference-frame best picks the driving frame whose keypoint layout (normalised for position and
  scale) is closest to the source's. --smooth ema|one-euro filters the driving keypoints causally;
  --smooth-strength S in [0,1): EMA weight 1-S, One-Euro cut-off 10^(1-2S) Hz.
crop: --crop x,y,w,h animates that region of a large photo at the model size and pastes the result
  back into the full photo with a feathered edge (--feather pixels).
outputs: .mp4 (H.264), .webm (VP9), .gif, or a folder of PNGs (a path with no extension or ending
  in '/'). --save-flow colours the dense motion with torchvision's flow_to_image (a displacement of
  a quarter of the image width is fully saturated).
""" + FACE_EPILOG


def parse_size(text: str) -> sizes.Size:
    """argparse type of ``--output-size``: :func:`tpsmm.core.media.size.parse_size` (``"N"`` or ``"WxH"``)."""
    try:
        return sizes.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_reference(text: str) -> int | str:
    """``"best"`` or an integer frame index, negative from the end (argparse type of ``--reference-frame``)."""
    if text == "best":
        return "best"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frame index or 'best', got {text!r}") from None


class _BatchAction(argparse.Action):
    """``--batch JOBS.csv`` runs a batch; ``--batch N`` (a whole number, the flag's meaning before batch files)
    is still accepted as ``--batch-size N``."""

    def __call__(self, parser, namespace, value, option_string=None):
        if value.strip().isdigit():
            namespace.batch_size = int(value)
        else:
            setattr(namespace, self.dest, value)


def register(sub) -> None:
    """Add the ``animate`` sub-command to ``sub`` (an argparse sub-parsers object)."""
    p = sub.add_parser("animate", help="animate a source image with a driving video",
                       description="Animate --source with the motion of --driving; frames are streamed in and "
                                   "out (memory does not grow with the clip length).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--checkpoint", help="tpsmm .safetensors (or official .pth.tar) checkpoint (required)")
    a("--source", help="source image (png, jpg, ...) (required unless --batch gives it)")
    a("--driving", help="driving video (mp4, webm, gif, ...), image folder or image (required unless --batch)")
    a("--out", help="output: .mp4, .webm, .gif or a folder for PNGs (required unless --batch)")
    a("--batch", action=_BatchAction, dest="jobs_csv", metavar="JOBS.csv",
      help="one animation per CSV row: columns source, driving, out and any option below by its long name; "
           "finished rows are skipped when run again; several processes (or torchrun ranks) may share it "
           "(a whole number N still means --batch-size N, as in earlier versions)")
    a("--mode", choices=MODES, default="relative", help="motion transfer (default relative)")
    a("--size", type=int, help="model inference size (default: the checkpoint's, 256 for vox)")
    a("--device", choices=DEVICE_CHOICES, default="auto", help="default: cuda or mps if present, else cpu")
    a("--dtype", choices=DTYPE_NAMES, default="float32",
      help="compute precision (on a CPU without native bfloat16, float32 is used with a warning)")
    a("--batch-size", type=int, metavar="BATCH",
      help="driving frames per forward pass (default: 8 on a GPU, 2 on the CPU, where bigger batches are no faster)")
    a("--channels-last", action=argparse.BooleanOptionalAction, default=None,
      help="channels_last convolutions (default: on in bfloat16/float16, off in float32)")
    a("--compile", action="store_true", help="torch.compile the renderer (slow first batch)")
    a("--backend", choices=BACKENDS, default="auto",
      help="what runs the networks: auto (default: the fastest installed, see README 'Backends'), torch, "
           "onnxruntime or openvino (graphs exported and cached on first use)")
    a("--graphs", metavar="DIR", help="with --backend onnxruntime|openvino: use this `tpsmm export` folder")
    a("--reference-frame", type=parse_reference, default=0, metavar="N|best",
      help="relative mode: driving frame matching the source pose, or 'best' (closest keypoint layout); default 0")
    a("--strength", type=float, default=1.0, help="relative mode: motion multiplier (default 1)")
    a("--smooth", choices=SMOOTHING_KINDS, default="off",
      help="causal smoothing of the driving keypoints (default off)")
    a("--smooth-strength", type=float, default=0.5, help="smoothing strength in [0, 1) (default 0.5)")
    a("--crop", type=crop_arg("--crop"), metavar="face|x,y,w,h",
      help="animate this region of the source ('face': found automatically), paste it back")
    a("--feather", type=int, default=16, help="crop paste-back blend width in pixels (default 16)")
    add_face_arguments(a)
    a("--output-size", type=parse_size, metavar="N|WxH", help="output frame size (default: model size)")
    a("--upscale", choices=UPSCALE_MODES, default="flow", help="how to reach a larger output size")
    a("--side-by-side", action="store_true", help="write source | driving | result panels")
    a("--draw-kp", action="store_true", help="draw the keypoints (one colour per TPS)")
    a("--save-flow", metavar="PATH", help="also write the coloured dense motion as a video")
    a("--save-occlusion", metavar="PATH", help="also write the occlusion mask as a video")
    a("--audio", action=argparse.BooleanOptionalAction, default=None,
      help="keep the driving clip's sound in an .mp4/.webm --out (the default; --no-audio drops it; --audio also "
           "warns when there is no sound to keep)")
    a("--max-frames", type=int, help="stop after this many driving frames")
    a("--max-pixels", type=int, metavar="N", help="largest driving frame (width x height) a video may declare "
      "(default 40000000, about 8K; 0 = no limit): guards against decompression bombs")
    a("--overwrite", action="store_true", help="replace existing output files")
    a("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run, batch_options=batch_options(p))


def _check_args(args) -> list[tuple[str, str]]:
    """The flag-level checks, before any work (the option rules live in :class:`AnimationOptions`):
    bounds of the flags that are no option, flag combinations, the files. Returns ``[(flag, path)]`` of the outputs."""
    for flag, value, low in (("--max-frames", args.max_frames, 1), ("--size", args.size, 1),
                             ("--max-pixels", args.max_pixels, 0)):
        if value is not None and value < low:
            raise ValueError(f"{flag}: must be >= {low}, got {value}")
    if args.crop is not None and args.output_size is not None:
        raise ValueError("--output-size cannot be combined with --crop (the output is the full source photo)")
    for flag, path in (("--checkpoint", args.checkpoint), ("--source", args.source), ("--driving", args.driving)):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{flag} {path}: file not found")
    outputs = [(f, p) for f, p in (("--out", args.out), ("--save-flow", args.save_flow),
                                   ("--save-occlusion", args.save_occlusion)) if p]
    check_outputs(outputs, inputs={args.checkpoint: "the checkpoint", args.source: "the source image",
                                   args.driving: "the driving video"}, overwrite=args.overwrite)
    return outputs


FLAGS = {"mode": "--mode", "reference_frame": "--reference-frame", "strength": "--strength", "smoothing": "--smooth",
         "smoothing_strength": "--smooth-strength", "crop": "--crop", "driving_crop": "--driving-crop", "feather": "--feather",
         "output_size": "--output-size", "upscale": "--upscale", "batch_size": "--batch-size", "dtype": "--dtype",
         "face_weights": "--face-weights", "backend": "--backend", "graphs": "--graphs"}
"""Field of the core (an :class:`AnimationOptions` field) -> the flag that sets it: the one place where
errors that name a field are made to name the flag (:meth:`FieldError.renamed`)."""


def _flagged(exc: ValueError) -> ValueError:
    """``exc`` naming the flag instead of the field (``reference_frame: ...`` -> ``--reference-frame: ...``)."""
    return exc.renamed(FLAGS[exc.field]) if isinstance(exc, FieldError) and exc.field in FLAGS else exc


def _box(crop):
    return None if crop == FACE else crop


def options_from_args(args: argparse.Namespace, *, dtype: torch.dtype) -> AnimationOptions:
    """The :class:`AnimationOptions` of ``tpsmm animate``'s flags with ``dtype`` (``--dtype`` resolved for the
    device); errors name the flag. A crop given as ``face`` is left out until
    :func:`~tpsmm.core.cli.face_args.resolve_crops` has found the box."""
    try:
        return AnimationOptions(
            mode=args.mode, reference_frame=args.reference_frame, strength=args.strength, smoothing=args.smooth,
            smoothing_strength=args.smooth_strength, crop=_box(args.crop), driving_crop=_box(args.driving_crop),
            feather=args.feather,
            output_size=args.output_size, upscale=args.upscale, side_by_side=args.side_by_side, draw_kp=args.draw_kp,
            with_motion=bool(args.save_flow or args.save_occlusion), batch_size=args.batch_size,
            dtype=dtype, channels_last=args.channels_last,
            compile=args.compile, backend=args.backend, graphs=args.graphs)
    except ValueError as exc:
        raise _flagged(exc) from None


def run(args: argparse.Namespace, *, batch_row: bool = False) -> int:
    """Execute ``tpsmm animate`` (argparse namespace from :func:`register`); returns the exit code."""
    from tqdm import tqdm

    if args.jobs_csv and not batch_row:
        return run_batch(args, lambda row_args: run(copy.copy(row_args), batch_row=True))
    for flag in ("checkpoint", "source", "driving", "out"):
        if not getattr(args, flag):
            raise ValueError(f"--{flag} is required (or give it per row with --batch JOBS.csv)")

    def show(message, category, filename, lineno, file=None, line=None):
        tqdm.write(f"tpsmm animate: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            return _run(args, tqdm)
        except ValueError as exc:
            raise _flagged(exc) from None


class _Progress(Hooks):
    """tqdm bars on stderr, one per pipeline stage."""

    def __init__(self, tqdm, quiet: bool) -> None:
        super().__init__(progress=self._update, on_stage=self._stage, on_reference=self._reference)
        self.tqdm, self.quiet, self.bar = tqdm, quiet, None

    def _stage(self, name: str, total: int | None) -> None:
        self.close()
        self.bar = self.tqdm(total=total, unit="frame", dynamic_ncols=True, disable=self.quiet, file=sys.stderr,
                             desc="animate" if name == "render" else name)

    def _update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def _reference(self, index: int) -> None:
        if not self.quiet:
            self.tqdm.write(f"reference frame: {index}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _keeps_sound(args, clip: DrivingFrames) -> bool:
    """Copy the driving clip's sound into --out? Yes by default when both can carry it (``clip`` was probed when it
    was opened); ``--audio`` asks even where they cannot (the writer then warns why there is none), ``--no-audio``
    never."""
    if args.audio is None:
        return output_kind(args.out) in AUDIO_CODEC and clip.has_audio
    return args.audio


def _run(args, tqdm) -> int:
    device = resolve_device(args.device, what="--device")
    dtype = resolve_dtype(args.dtype, device, what="--dtype")
    options = options_from_args(args, dtype=dtype)                   # every option rule, before any work
    progress = _Progress(tqdm, args.quiet)
    outputs = dict(_check_args(args))
    source = torch.from_numpy(load_image(args.source))
    args.crop, args.driving_crop = resolve_crops(args, source)     # 'face' -> a CropBox
    options = options.replace(crop=args.crop, driving_crop=args.driving_crop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # the .pth.tar conversion hint is not news here
        model = load_model(args.checkpoint, device=device, image_size=args.size)
    pipeline = AnimationPipeline(model, options, hooks=progress)     # refuses what the model cannot do
    with contextlib.ExitStack() as stack:
        clip = stack.enter_context(DrivingFrames.from_video(
            args.driving, max_frames=args.max_frames,
            max_pixels="default" if args.max_pixels is None else (args.max_pixels or None)))
        stack.callback(progress.close)
        main = stack.enter_context(VideoWriter(outputs["--out"], fps=clip.fps, overwrite=args.overwrite,
                                               audio_from=args.driving if _keeps_sound(args, clip) else None))
        tracks = [("frames", main)] + [
            (track, stack.enter_context(VideoWriter(outputs[flag], fps=clip.fps, overwrite=args.overwrite)))
            for flag, track in (("--save-flow", "flow"), ("--save-occlusion", "occlusion")) if flag in outputs]
        written = write_rendered(pipeline.run(source, clip), tracks, motion_size=model.config.image_size)
    shape = written.size or sizes.Size(0, 0)
    print(f"wrote {main.path}: {written.frames} frames, {shape}, {clip.fps:g} fps ({written.rate:.2f} frames/s)")
    if clip.skipped:
        print(f"tpsmm animate: warning: skipped {clip.skipped} driving frame(s) that failed to decode",
              file=sys.stderr)
    return 0
