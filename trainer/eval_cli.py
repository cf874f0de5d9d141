"""``tpsmm eval``: the command line of :func:`~tpsmm.trainer.evaluate.evaluate_reconstruction`."""
from __future__ import annotations

import argparse
import os
import sys

from ..core.media.image_io import VideoError
from ..core.device import resolve_device
from .data import DataError
from .evaluate import evaluate_reconstruction

__all__ = ["add_eval_arguments", "eval_command"]


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tpsmm eval``."""
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (.safetensors or release .pth.tar)")
    parser.add_argument("--data", required=True, help="ROOT with test/, or a folder of test videos")
    parser.add_argument("--out", help="output folder (default: reconstruction/ next to the checkpoint)")
    parser.add_argument("--batch", dest="batch_size", metavar="BATCH", type=int, default=8,
                        help="frames per forward pass (default 8)")
    parser.add_argument("--no-bg", action="store_true", help="do not use the background predictor")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cuda if available)")
    parser.add_argument("--no-videos", action="store_true", help="only write report.json")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def eval_command(args: argparse.Namespace) -> int:
    """Body of ``tpsmm eval``: 0 on success, 1 on bad input (one line on stderr, like every command), 130 on Ctrl-C."""
    from ..core.model.checkpoint import CheckpointError
    from ..core import load_model
    from ..core.model.config import ConfigError

    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch {args.batch_size}: must be >= 1")
        if not os.path.isfile(args.checkpoint):
            raise FileNotFoundError(f"--checkpoint {args.checkpoint}: file not found")
        if not os.path.isdir(args.data):
            raise FileNotFoundError(f"--data {args.data}: folder not found")
        device = resolve_device(args.device, what="--device")
        out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "reconstruction")
        model = load_model(args.checkpoint, device=device)
        report = evaluate_reconstruction(model, args.data, out_dir=out, batch_size=args.batch_size,
                                         use_bg=not args.no_bg, progress=not args.quiet, device=device,
                                         save_videos=not args.no_videos, overwrite=args.overwrite)
    except (DataError, VideoError, CheckpointError, ConfigError, ValueError, OSError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        print(f"tpsmm eval: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tpsmm eval: interrupted; finished videos were kept, the one in progress was discarded",
              file=sys.stderr)
        return 130
    width = max(len(n) for n in report.per_video)
    for name, l1 in report.per_video.items():
        print(f"{name:<{width}}  L1 {l1:.5f}  (no-motion {report.baseline_per_video[name]:.5f}, "
              f"{report.frames_per_video[name]} frames)")
    print(f"mean L1 {report.mean_l1:.5f} over {report.frames} frames of {len(report.per_video)} videos "
          f"(no-motion baseline {report.baseline_mean_l1:.5f}); report: {os.path.join(out, 'report.json')}")
    return 0
