"""``tpsmm export CHECKPOINT --out DIR``: the networks as ONNX graphs (see the README's export contract).

Writes ``keypoints.onnx``, ``generator.onnx``, ``avd.onnx`` (when the checkpoint has an AVD network) and
``tpsmm-export.json`` into ``DIR``. The graphs need neither PyTorch nor TPS code: the TPS solve is inside
``generator.onnx``. An existing ``DIR`` is replaced only with ``--overwrite`` (and only when it is an
earlier export or empty); an error leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    from ..animation.animator import load_model
    from ..backends.export import export_graphs
    from ..backends.runtimes import require

    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"{args.checkpoint}: file not found")
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise RuntimeError('tpsmm export needs the onnx package: pip install "tpsmm[export]"') from None
    if args.check:
        require(args.check)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(args.checkpoint, image_size=args.size, backend="torch")
    started = time.perf_counter()
    note = (lambda m: None) if args.quiet else (lambda m: print(f"tpsmm export: {m}", file=sys.stderr, flush=True))
    manifest = export_graphs(model, args.out, overwrite=args.overwrite, background=args.background, progress=note)
    if args.check:
        from ..backends.engine import GraphEngine
        import torch

        GraphEngine(model, args.check, graphs=args.out, background=args.background, dtype=torch.float32)
    print(f"wrote {args.out}: {', '.join(g['file'] for g in manifest['graphs'].values())} "
          f"(size {manifest['image_size']}, K={manifest['num_tps']}, opset {manifest['opset']}, "
          f"{time.perf_counter() - started:.0f} s)")
    return 0


def register(sub) -> None:
    """Add ``tpsmm export`` to ``sub`` (an argparse sub-parsers object)."""
    p = sub.add_parser("export", help="export a checkpoint's networks to ONNX (for ONNX Runtime, OpenVINO, TensorRT)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="tpsmm .safetensors (or official .pth.tar) checkpoint")
    p.add_argument("--out", required=True, help="output folder (refused if it exists, unless --overwrite)")
    p.add_argument("--size", type=int, help="image size the graphs run at (default: the checkpoint's)")
    p.add_argument("--background", action="store_true",
                   help="also export generator-bg.onnx (an extra bg_param [B,3,3] input for background motion)")
    p.add_argument("--check", choices=("onnxruntime", "openvino"),
                   help="load the exported graphs with this runtime before reporting success")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export folder")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)
