"""``tpsmm render``: run a saved ComfyUI workflow (API format) headless, in batches, or on a ComfyUI server.

Examples::

    tpsmm render workflows/animate_basic_api.json --set 1.image=face.png --set 2.file=drive.mp4 \\
        --set 3.ckpt_name=vox.safetensors --models-dir models --out out
    tpsmm render workflows/animate_basic_api.json --batch jobs.csv --out out        # resumable
    torchrun --nproc_per_node 4 -m tpsmm render workflows/animate_basic_api.json --batch jobs.csv --out out
    tpsmm render workflows/animate_basic_api.json --server http://127.0.0.1:8188 --set 1.image=face.png
"""
from __future__ import annotations

import argparse
import os
import sys

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from . import comfy_compat
    from .executor import Executor, default_registry
    from .graph import apply_overrides, load_prompt, parse_override
    from .jobs import format_summary, rank_from_env, read_jobs, run_batch

    if args.models_dir:
        if not os.path.isdir(args.models_dir):
            raise FileNotFoundError(f"--models-dir {args.models_dir}: no such folder")
        os.environ[comfy_compat.ENV_MODELS_DIR] = os.path.abspath(args.models_dir)
    registry = default_registry()
    prompt = apply_overrides(load_prompt(args.workflow, registry), [parse_override(s) for s in args.set], registry)
    if args.server:
        from .remote import ComfyClient

        client = ComfyClient(args.server, timeout=args.timeout)
        render = lambda p: client.run(p, out_dir=args.out, input_dir=args.input_dir).files  # noqa: E731
    else:
        executor = Executor(input_dir=args.input_dir, output_dir=args.out, registry=registry)
        render = lambda p: executor.run(p).files  # noqa: E731
    if not args.batch:
        for path in render(prompt):
            print(path)
        return 0
    rank, world = rank_from_env()
    summary = run_batch(prompt, read_jobs(args.batch), render, out_dir=args.out, registry=registry, rank=rank,
                        world=world, progress=not args.quiet)
    print(format_summary(summary, rank=rank, world=world), file=sys.stderr)
    return 0 if summary.ok else 1


def register(sub) -> None:
    p = sub.add_parser(
        "render", help="run a saved ComfyUI workflow (API format) without ComfyUI, in batches, or on a server",
        description="Execute an API-format ComfyUI workflow made of TPSMM nodes and LoadImage, LoadVideo, "
                    "GetVideoComponents, CreateVideo, SaveVideo, SaveImage, PreviewImage, without ComfyUI.")
    p.add_argument("workflow", help="workflow JSON (API format; a UI-format file of known nodes also works)")
    p.add_argument("--set", action="append", default=[], metavar="NODE.input=VALUE",
                   help="set an input (NODE = node id, title or class_type); repeatable")
    p.add_argument("--out", default="output", help="output folder (default: ./output)")
    p.add_argument("--input-dir", default=".", help="folder that relative image/video names are read from "
                                                     "(default: current folder)")
    p.add_argument("--models-dir", help="folder of TPSMM checkpoints (default: $TPSMM_MODELS_DIR, ./models/tpsmm)")
    p.add_argument("--batch", metavar="JOBS.csv", help="one job per row; columns are NODE.input targets; "
                                                       "finished jobs are skipped when run again")
    p.add_argument("--server", metavar="URL", help="send the workflow to a running ComfyUI (e.g. "
                                                   "http://127.0.0.1:8188) and fetch its outputs")
    p.add_argument("--timeout", type=float, default=3600.0, help="--server: seconds to wait per job (default 3600)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)

