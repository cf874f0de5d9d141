"""``tpsmm demo``: animate the bundled character with the bundled driving clip, no arguments needed.

Uses the bundled demo model (``assets/demo/model.safetensors``, trained by ``tpsmm train`` on the
procedural data set of ``tpsmm make-dataset``; the README has the exact commands) and renders the clip
once through the animation pipeline, writing three layouts of each batch as it comes:

* ``animation.mp4``    — the animated source character;
* ``side_by_side.mp4`` — source | driving | result;
* ``keypoints.mp4``    — the same with the keypoints drawn (one colour per TPS).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["ASSETS", "register", "run"]

ASSETS = Path(__file__).resolve().parent / "assets" / "demo"
OUTPUTS = {"animation.mp4": "result", "side_by_side.mp4": "side-by-side", "keypoints.mp4": "side-by-side+kp"}
"""Output file -> pipeline layout (:data:`tpsmm.core.animation.options.VIEWS`)."""


def register(sub) -> None:
    p = sub.add_parser("demo", help="animate the bundled character with the bundled clip (no arguments needed)",
                       description="Render the bundled demo: the demo model animates a character image with a "
                                   "driving clip of another character; writes animation.mp4, side_by_side.mp4 "
                                   "and keypoints.mp4.")
    p.add_argument("--out", default="tpsmm-demo", help="output folder (default: ./tpsmm-demo)")
    p.add_argument("--size", type=int, default=256, help="output frame size in pixels (default 256)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    p.add_argument("--overwrite", action="store_true", help="replace earlier demo videos in --out")
    p.set_defaults(func=run)


def _check_out(folder: str) -> None:
    """Create ``folder`` if needed and prove it is writable; ``ValueError`` naming ``--out`` otherwise."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"--out {folder}: exists and is not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"--out {folder}: cannot write there ({exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> int:
    import contextlib

    import torch

    from .core import AnimationOptions, AnimationPipeline, DrivingFrames, load_model
    from .core.animation.writing import write_rendered
    from .core.media.image_io import load_image
    from .core.media.video import VideoWriter
    from .core.device import resolve_device

    for name in ("model.safetensors", "source.png", "driving.mp4"):
        if not (ASSETS / name).is_file():
            raise ValueError(f"demo asset {ASSETS / name} is missing (a broken install? reinstall tpsmm)")
    if args.size < 16:
        raise ValueError(f"--size {args.size}: must be at least 16")
    _check_out(args.out)
    existing = [n for n in OUTPUTS if os.path.exists(os.path.join(args.out, n))]
    if existing and not args.overwrite:
        raise ValueError(f"--out {args.out}: already holds {', '.join(existing)} (pass --overwrite to replace)")
    from .core.media.outputs import check_outputs  # links, devices, foreign folders: refused before any render

    check_outputs([("--out", os.path.join(args.out, n)) for n in OUTPUTS], inputs={}, overwrite=args.overwrite)
    start = time.perf_counter()
    model = load_model(ASSETS / "model.safetensors", device=resolve_device(args.device, what="--device"))
    views = tuple(OUTPUTS.values())
    # batch 8: the 64² demo model is small enough that bigger batches pay off even on 2 CPU cores
    # (48 frames: 6.9 s at batch 8 vs 10.8 s at batch 2, measured while another job shared the CPU)
    options = AnimationOptions(mode="relative", output_size=(args.size, args.size), extra_views=views[1:],
                               channels_last=True, batch_size=8)
    source = torch.from_numpy(load_image(ASSETS / "source.png"))
    with contextlib.ExitStack() as stack:
        clip = stack.enter_context(DrivingFrames.from_video(ASSETS / "driving.mp4"))
        writers = [(view, stack.enter_context(VideoWriter(os.path.join(args.out, name), fps=clip.fps,
                                                          overwrite=args.overwrite)))
                   for name, view in OUTPUTS.items()]
        write_rendered(AnimationPipeline(model, options).run(source, clip), writers)
    print(f"demo done in {time.perf_counter() - start:.1f} s: {', '.join(OUTPUTS)} in {args.out}", file=sys.stderr)
    return 0
