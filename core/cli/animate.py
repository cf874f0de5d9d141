"""``tpsmm animate``: animate a source image with a driving video, streaming frames in and out.

The driving clip is decoded and the result encoded batch by batch (memory does not grow with the clip
length); the output is written to a temporary file and renamed on success, so an error or Ctrl-C
leaves nothing behind. See ``tpsmm animate --help`` for the options.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange

__all__ = ["register", "run", "parse_size", "parse_reference"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FLOW_SCALE = 0.25
"""--save-flow: displacement (normalised units, 2 = image width) shown fully saturated."""

EPILOG = """\
precision: --dtype bfloat16/float16 run the convolutions in half precision (autocast) and keep the
  TPS solve, heatmaps, softmax, warps and blending in float32. float16 on the CPU falls back to
  bfloat16 with a warning (CPUs have no fast float16 convolutions).
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
"""


def parse_size(text: str) -> tuple[int, int]:
    """``"N"`` or ``"WxH"`` -> ``(height, width)`` (argparse type of ``--output-size``)."""
    try:
        parts = [int(v) for v in str(text).lower().split("x")]
        if len(parts) == 1:
            parts = parts * 2
        w, h = parts
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or WxH (e.g. 512 or 1024x768), got {text!r}") from None
    if min(w, h) < 2:
        raise argparse.ArgumentTypeError(f"sizes must be >= 2, got {text!r}")
    return h, w


def parse_reference(text: str) -> int | str:
    """``"best"`` or an integer frame index, negative from the end (argparse type of ``--reference-frame``)."""
    if text == "best":
        return "best"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frame index or 'best', got {text!r}") from None


def _crop_arg(text: str):
    from ..animation.crop import CropBox

    try:
        return CropBox.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--crop: ")) from None


def register(sub) -> None:
    """Add the ``animate`` sub-command to ``sub`` (an argparse sub-parsers object)."""
    p = sub.add_parser("animate", help="animate a source image with a driving video",
                       description="Animate --source with the motion of --driving; frames are streamed in and "
                                   "out (memory does not grow with the clip length).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--checkpoint", required=True, help="tpsmm .safetensors (or official .pth.tar) checkpoint")
    a("--source", required=True, help="source image (png, jpg, ...)")
    a("--driving", required=True, help="driving video (mp4, webm, gif, ...), image folder or image")
    a("--out", required=True, help="output: .mp4, .webm, .gif or a folder for PNGs")
    a("--mode", choices=("standard", "relative", "avd"), default="relative", help="motion transfer (default relative)")
    a("--size", type=int, help="model inference size (default: the checkpoint's, 256 for vox)")
    a("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="default: cuda or mps if present, else cpu")
    a("--dtype", choices=tuple(DTYPES), default="float32",
      help="compute precision (float16 on cpu falls back to bfloat16 with a warning)")
    a("--batch", type=int, help="driving frames per forward pass (default: 8 on a GPU, 2 on the CPU, where "
                                 "bigger batches are no faster)")
    a("--channels-last", action=argparse.BooleanOptionalAction, default=True,
      help="channels_last convolutions (default on)")
    a("--compile", action="store_true", help="torch.compile the renderer (slow first batch)")
    a("--reference-frame", type=parse_reference, default=0, metavar="N|best",
      help="relative mode: driving frame matching the source pose, or 'best' (closest keypoint layout); default 0")
    a("--strength", type=float, default=1.0, help="relative mode: motion multiplier (default 1)")
    a("--smooth", choices=("off", "ema", "one-euro"), default="off",
      help="causal smoothing of the driving keypoints (default off)")
    a("--smooth-strength", type=float, default=0.5, help="smoothing strength in [0, 1) (default 0.5)")
    a("--crop", type=_crop_arg, metavar="x,y,w,h", help="animate this region of the source, paste it back")
    a("--feather", type=int, default=16, help="crop paste-back blend width in pixels (default 16)")
    a("--output-size", type=parse_size, metavar="N|WxH", help="output frame size (default: model size)")
    a("--upscale", choices=("flow", "bicubic"), default="flow", help="how to reach a larger output size")
    a("--side-by-side", action="store_true", help="write source | driving | result panels")
    a("--draw-kp", action="store_true", help="draw the keypoints (one colour per TPS)")
    a("--save-flow", metavar="PATH", help="also write the coloured dense motion as a video")
    a("--save-occlusion", metavar="PATH", help="also write the occlusion mask as a video")
    a("--audio", action="store_true", help="copy the driving clip's audio track (mp4/webm)")
    a("--max-frames", type=int, help="stop after this many driving frames")
    a("--overwrite", action="store_true", help="replace existing output files")
    a("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _device(name: str) -> torch.device:
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    if name == "mps" and not has_mps:
        raise ValueError("--device mps: Apple MPS is not available on this machine")
    return torch.device(name)


def _dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "float16" and device.type == "cpu":
        warnings.warn("--dtype float16 is not supported on the CPU; using bfloat16", RuntimeWarning, stacklevel=2)
        return torch.bfloat16
    return DTYPES[name]


def _check_args(args) -> list[tuple[str, str]]:
    """Validate options and output paths before any work; returns ``[(flag, path)]`` of the outputs."""
    from ..media.outputs import check_outputs

    if args.batch is not None and args.batch < 1:
        raise ValueError(f"--batch: must be >= 1, got {args.batch}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames: must be >= 1, got {args.max_frames}")
    if args.mode != "relative" and (args.reference_frame != 0 or args.strength != 1.0):
        raise ValueError(f"--reference-frame/--strength only apply to --mode relative (got --mode {args.mode})")
    if args.crop is not None and args.output_size is not None:
        raise ValueError("--output-size cannot be combined with --crop (the output is the full source photo)")
    if args.feather < 0:
        raise ValueError(f"--feather: must be >= 0, got {args.feather}")
    for flag, path in (("--checkpoint", args.checkpoint), ("--source", args.source), ("--driving", args.driving)):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{flag} {path}: file not found")
    outputs = [(f, p) for f, p in (("--out", args.out), ("--save-flow", args.save_flow),
                                   ("--save-occlusion", args.save_occlusion)) if p]
    check_outputs(outputs, inputs={args.checkpoint: "the checkpoint", args.source: "the source image",
                                   args.driving: "the driving video"}, overwrite=args.overwrite)
    return outputs


@dataclass
class _Rendered:
    """One batch of output frames (float ``[b,H,W,3]`` in ``[0,1]``, CPU) and the optional extras."""

    frames: torch.Tensor
    flow: torch.Tensor | None = None
    occlusion: torch.Tensor | None = None


class _Renderer:
    """Per-clip state: engine and source cache, keypoint smoothing and transfer, output composition."""

    def __init__(self, model, args, *, dtype: torch.dtype, fps: float) -> None:
        from ..animation.crop import crop
        from ..animation.engine import AnimationEngine
        from ..media.image_io import load_image
        from ..animation.smoothing import make_filter

        self.model, self.args, self.size = model, args, model.config.image_size
        self.engine = AnimationEngine(model, batch_size=args.batch, dtype=dtype, channels_last=args.channels_last,
                                      compile=args.compile)
        self.photo = torch.from_numpy(load_image(args.source))                       # [H,W,3]
        region = self.photo
        if args.crop is not None:
            args.crop.check(self.photo.shape[1], self.photo.shape[0])
            region = crop(self.photo, args.crop)[0]
            self.out_hw = (args.crop.h, args.crop.w)
        else:
            self.out_hw = args.output_size or (self.size, self.size)
        src = model.prepare(region, name="--source", single=True)
        self.kp_source = self.engine.detect(src)
        self.cache = self.engine.cache_source(src)
        bigger = self.out_hw[0] > self.size or self.out_hw[1] > self.size
        self.hires_source = (rearrange(region, "h w c -> 1 c h w").to(self.engine.device)
                             if bigger and args.upscale == "flow" else None)
        self.smoother = make_filter(args.smooth, args.smooth_strength, fps=fps)
        self.transfer = None
        self.still = self._still(region) if args.side_by_side else None

    def _still(self, region: torch.Tensor) -> torch.Tensor:
        """Source panel ``[1,H,W,3]`` of the side-by-side layout (keypoints drawn if asked)."""
        from ..animation.crop import paste_back, resize_images
        from ..media.visualize import draw_keypoints

        still = resize_images(region[None], self.out_hw)
        if self.args.draw_kp:
            still = draw_keypoints(still, self.kp_source.cpu())
        return paste_back(self.photo, still, self.args.crop, feather=0) if self.args.crop else still

    def detect(self, chunk: np.ndarray) -> torch.Tensor:
        """uint8 driving frames ``[b,H,W,3]`` -> smoothed keypoints ``[b,N,2]`` (float32, device)."""
        frames = self.model.prepare(torch.from_numpy(chunk).float().div_(255), name="--driving")
        kp = self.engine.detect(frames)
        return self.smoother(kp) if self.smoother is not None else kp

    def set_reference(self, kp_reference: torch.Tensor) -> None:
        from ..animation.motion import MotionTransfer

        self.transfer = MotionTransfer(mode=self.args.mode, kp_source=self.kp_source,
                                       kp_reference=kp_reference.to(self.kp_source), strength=self.args.strength,
                                       avd_network=self.model.avd_network)

    @torch.no_grad()
    def render(self, chunk: np.ndarray | None, kp: torch.Tensor) -> _Rendered:
        """Render driving keypoints ``kp [b,N,2]`` (``chunk``: the driving frames, for side-by-side)."""
        from ..animation.crop import paste_back
        from ..animation.hires import render_hires, upscale_frames
        from ..media.images import to_user_layout
        from ..media.visualize import draw_keypoints, flow_to_rgb, occlusion_to_rgb, side_by_side

        args = self.args
        kp_new = self.transfer(kp.to(self.kp_source))
        gen, motion = self.engine.render_batch(self.cache, self.kp_source, kp_new)
        pred = gen.prediction.clamp(0, 1)
        if self.hires_source is not None:
            frames = render_hires(self.hires_source, pred, motion.deformation, motion.occlusion[-1], size=self.out_hw)
        else:
            frames = upscale_frames(pred, self.out_hw)
        frames = to_user_layout(frames)
        if args.draw_kp:
            frames = draw_keypoints(frames, kp_new.cpu())
        if args.crop is not None:
            frames = paste_back(self.photo, frames, args.crop, feather=args.feather)
        if args.side_by_side:
            driving = torch.from_numpy(chunk).float().div_(255)
            if args.draw_kp:
                driving = draw_keypoints(driving, kp.cpu())
            frames = side_by_side(self.still, driving, frames)
        s = (self.size, self.size)
        return _Rendered(
            frames=frames,
            flow=flow_to_rgb(motion.deformation.cpu(), size=s, max_magnitude=FLOW_SCALE) if args.save_flow else None,
            occlusion=occlusion_to_rgb(motion.occlusion[-1].cpu(), size=s) if args.save_occlusion else None)


def _driving_stream(r: _Renderer, reader, args, tqdm):
    """Yield ``(uint8 frames or None, keypoints)`` per batch.

    Reference frame 0 (and the standard/avd modes) need one pass. Any other reference needs every
    driving keypoint first: a keypoint pass (keeps ``[T,N,2]`` only), then the keypoints are rendered
    in batches, re-reading the frames only if the side-by-side layout shows them.
    """
    from ..animation.motion import best_reference_frame
    from ..media.video import VideoError

    if args.mode != "relative" or args.reference_frame == 0:
        for chunk in reader.batches(args.batch):
            kp = r.detect(chunk)
            if r.transfer is None:
                r.set_reference(kp[:1])
            yield chunk, kp
        return
    kps = []
    with tqdm(total=reader.expected_frames or None, unit="frame", disable=args.quiet, file=sys.stderr,
              desc="keypoints", dynamic_ncols=True) as bar:
        for chunk in reader.batches(args.batch):
            kps.append(r.detect(chunk).cpu())
            bar.update(chunk.shape[0])
    kps = torch.cat(kps)
    t = kps.shape[0]
    ref = best_reference_frame(r.kp_source.cpu(), kps) if args.reference_frame == "best" else args.reference_frame
    if not -t <= ref < t:
        raise ValueError(f"--reference-frame: {ref} is outside the {t} driving frames")
    ref %= t
    if args.reference_frame == "best" and not args.quiet:
        tqdm.write(f"reference frame: {ref}", file=sys.stderr)
    r.set_reference(kps[ref:ref + 1])
    frames = reader.batches(args.batch) if args.side_by_side else None
    for start in range(0, t, args.batch):
        chunk = next(frames, None) if frames is not None else None
        kp = kps[start:start + args.batch]
        if frames is not None and (chunk is None or chunk.shape[0] != kp.shape[0]):
            raise VideoError(f"{reader.path}: the video decoded differently on the second pass")
        yield chunk, kp


def run(args: argparse.Namespace) -> int:
    """Execute ``tpsmm animate`` (argparse namespace from :func:`register`); returns the exit code."""
    from tqdm import tqdm

    def show(message, category, filename, lineno, file=None, line=None):
        tqdm.write(f"tpsmm animate: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        return _run(args, tqdm)


def _run(args, tqdm) -> int:
    from ..model.checkpoint import load_model
    from ..media.video import VideoReader, VideoWriter

    outputs = dict(_check_args(args))
    device = _device(args.device)
    dtype = _dtype(args.dtype, device)
    if args.batch is None:
        args.batch = 2 if device.type == "cpu" else 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # the .pth.tar conversion hint is not news here
        model = load_model(args.checkpoint, device=device, image_size=args.size)
    if args.mode == "avd" and model.avd_network is None:
        raise ValueError(f"--mode avd: {args.checkpoint} has no AVD network (train one with `tpsmm train-avd`, "
                         "or use --mode relative)")
    reader = VideoReader(args.driving, max_frames=args.max_frames)
    fps = reader.info.fps
    renderer = _Renderer(model, args, dtype=dtype, fps=fps)
    started, written, shape = time.perf_counter(), 0, (0, 0)
    with contextlib.ExitStack() as stack:
        stack.callback(reader.close)
        bar = stack.enter_context(tqdm(total=reader.expected_frames or None, unit="frame", dynamic_ncols=True,
                                       disable=args.quiet, file=sys.stderr, desc="animate"))
        main = stack.enter_context(VideoWriter(outputs["--out"], fps=fps, overwrite=args.overwrite,
                                               audio_from=args.driving if args.audio else None))
        extra = {flag: stack.enter_context(VideoWriter(outputs[flag], fps=fps, overwrite=args.overwrite))
                 for flag in ("--save-flow", "--save-occlusion") if flag in outputs}
        for chunk, kp in _driving_stream(renderer, reader, args, tqdm):
            result = renderer.render(chunk, kp)
            main.write(result.frames)
            if "--save-flow" in extra:
                extra["--save-flow"].write(result.flow)
            if "--save-occlusion" in extra:
                extra["--save-occlusion"].write(result.occlusion)
            written += result.frames.shape[0]
            shape = tuple(result.frames.shape[1:3])
            bar.update(result.frames.shape[0])
    rate = written / max(time.perf_counter() - started, 1e-9)
    print(f"wrote {main.path}: {written} frames, {shape[1]}x{shape[0]}, {fps:g} fps ({rate:.2f} frames/s)")
    if reader.skipped:
        print(f"tpsmm animate: warning: skipped {reader.skipped} driving frame(s) that failed to decode",
              file=sys.stderr)
    return 0
