"""``tpsmm render``: run a saved ComfyUI workflow on real ComfyUI, one server or a fleet, in batches.

Examples::

    tpsmm render workflows/animate_basic_api.json --comfyui ~/ComfyUI --models-dir models \\
        --set 1.image=face.png --set 2.file=drive.mp4 --set 3.ckpt_name=vox.safetensors --out out
    tpsmm render workflows/animate_basic_api.json --server http://gpu1:8188 --server http://gpu2:8188 \\
        --batch jobs.csv --out out                                           # resumable
    torchrun --nproc_per_node 2 -m tpsmm render flow.json --server ... --batch jobs.csv --out out
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys

__all__ = ["register"]

ENV_COMFYUI = "TPSMM_COMFYUI"


def _devices(cpu: bool) -> list[int]:
    if cpu:
        return []
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def _engine(args):
    """Context manager yielding the servers: ``--server`` URLs, else ComfyUI started from ``--comfyui``."""
    from .client import ComfyServer
    from .launcher import LocalComfyUI
    from .prompt import RenderError

    if args.server:
        return contextlib.nullcontext([ComfyServer(url, timeout=args.timeout) for url in args.server])
    comfy = args.comfyui or os.environ.get(ENV_COMFYUI)
    if not comfy:
        raise RenderError(f"no ComfyUI to render on: pass --server URL (repeatable) or --comfyui DIR "
                          f"(or set {ENV_COMFYUI})")
    return LocalComfyUI(comfy, models_dir=args.models_dir, devices=_devices(args.cpu), timeout=args.timeout,
                        start_timeout=args.start_timeout)


def _precheck(args) -> None:
    """Checks that need no server, done before any is contacted or started."""
    from .prompt import RenderError, parse_override

    for flag, seconds in (("--timeout", args.timeout), ("--start-timeout", args.start_timeout)):
        if not seconds > 0:
            raise RenderError(f"{flag} {seconds:g}: must be a positive number of seconds")
    for text in args.set:
        parse_override(text)
    for path, what in ((args.workflow, "workflow"), (args.batch, "--batch")):
        if path and not os.path.isfile(path):
            raise RenderError(f"{path}: {what} file not found")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise RenderError(f"--out {args.out}: exists and is not a folder")
    if not os.path.isdir(args.input_dir):
        raise RenderError(f"--input-dir {args.input_dir}: no such folder")
    if args.server and args.models_dir:
        raise RenderError("--models-dir applies to --comfyui (a server started here); a --server uses its own models")


def _schemas(servers) -> dict:
    """The node schemas every server serves (a node missing on one server counts as missing)."""
    infos = [s.object_info() for s in servers]
    common = set(infos[0]).intersection(*infos[1:])
    return {k: v for k, v in infos[0].items() if k in common}


def _jobs(args, schemas: dict, servers) -> list:
    from ..core.cli.batch import rank_from_env, read_rows, shard
    from .fleet import RenderJob
    from .prompt import Override, apply_overrides, check_target, load_workflow, parse_override, validate

    where = servers[0].url if len(servers) == 1 else "every server"
    base = apply_overrides(load_workflow(args.workflow, schemas), [parse_override(s) for s in args.set], schemas)
    if not args.batch:
        return [RenderJob(prompt=validate(base, schemas, server=where), label="the workflow")]

    def check_column(name: str) -> None:
        node, dot, inp = name.rpartition(".")
        if not dot or not node or not inp:
            raise ValueError("not a NODE.input target (e.g. 2.file)")
        try:
            check_target(base, schemas, node, inp, what="")
        except Exception as exc:
            raise ValueError(str(exc).split(": ", 1)[-1]) from None

    rank, world = rank_from_env()
    jobs = []
    for row in shard(read_rows(args.batch, check_column=check_column), rank, world):
        tag = f"{args.batch} line {row.line}"
        overrides = [Override(*k.rsplit(".", 1), v) for k, v in row.values.items()]
        try:
            prompt = validate(apply_overrides(base, overrides, schemas, what=tag), schemas, server=where)
        except Exception as exc:
            raise type(exc)(f"{tag}: {exc}") from None
        jobs.append(RenderJob(prompt=prompt, label=f"row {row.row} (line {row.line})", tag=row))
    return jobs


def _key(prompt: dict) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _render(args, servers) -> int:
    from ..core.cli.batch import BatchSummary, format_summary, rank_from_env
    from ..core.cli.claims import JobStore
    from .fleet import Fleet
    from .prompt import RenderError

    schemas = _schemas(servers)
    jobs = _jobs(args, schemas, servers)
    fleet = Fleet(servers, out_dir=args.out, input_dir=args.input_dir, schemas=schemas)
    for job in jobs:            # every media input checked before anything is sent
        try:
            fleet.local_media(job.prompt)
        except RenderError as exc:
            raise RenderError(f"{args.batch} line {job.tag.line}: {exc}" if args.batch else str(exc)) from None
    store, summary = JobStore(args.out), BatchSummary()
    bar = _bar(len(jobs), args.quiet)

    def take(job) -> bool:
        key = job.key = _key(job.prompt)
        if args.batch and (store.is_done(key) or not store.claim(key)):
            summary.skipped.append(job.tag)
            bar.update(1)
            return False
        return True

    def done(job, files) -> None:
        if args.batch:
            store.mark_done(job.key, files)
        summary.rendered.append(job.tag)
        for path in files:
            bar.write(path, file=sys.stdout)
        bar.update(1)

    def failed(job, message) -> None:
        if args.batch:
            store.release(job.key)
            bar.write(f"tpsmm render: {job.label} failed: {message}", file=sys.stderr)
        summary.failed.append((job.tag, message))
        bar.update(1)

    def progress(server, job, value, total) -> None:
        bar.set_postfix_str(f"{job.label} on {server.url}: {value}/{total}", refresh=True)

    try:
        fleet.run(jobs, take=take, done=done, failed=failed, progress=progress)
    finally:
        store.close()
        bar.close()
    if not args.batch:
        if summary.failed:
            raise _error(summary.failed[0][1])
        return 0
    rank, world = rank_from_env()
    print(format_summary("render", summary, rank=rank, world=world), file=sys.stderr)
    return 0 if summary.ok else 1


def _error(message: str):
    from .prompt import RenderError

    return RenderError(message)


def _bar(total: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="render", unit="job", disable=quiet, file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    _precheck(args)
    with _engine(args) as servers:
        return _render(args, servers)


def register(sub) -> None:
    p = sub.add_parser(
        "render", help="run a saved ComfyUI workflow on ComfyUI (one server or a fleet), in batches",
        description="Run a ComfyUI workflow (API or UI format) on real ComfyUI: running servers (--server, "
                    "repeatable) or ComfyUI started here headless (--comfyui DIR, one server per GPU). The workflow "
                    "is checked against the servers' node schemas before anything is queued; results are "
                    "downloaded into --out.")
    a = p.add_argument
    a("workflow", help="workflow JSON (API format from 'Export (API)', or a saved UI workflow)")
    a("--server", action="append", default=[], metavar="URL",
      help="a running ComfyUI, e.g. http://127.0.0.1:8188; repeat for a fleet (jobs go to whichever is free)")
    a("--comfyui", metavar="DIR", help=f"start ComfyUI from this folder headless (default: ${ENV_COMFYUI}) "
                                       "when no --server is given; stopped again at the end")
    a("--models-dir", help="--comfyui: extra model folder (ComfyUI layout, or a flat folder of TPSMM checkpoints)")
    a("--cpu", action="store_true", help="--comfyui: one server on the CPU even when GPUs are visible")
    a("--set", action="append", default=[], metavar="NODE.input=VALUE",
      help="set an input (NODE = node id, title or class_type); repeatable")
    a("--batch", metavar="JOBS.csv", help="one job per row; columns are NODE.input targets; finished rows are "
                                          "skipped when run again; several processes may share --out")
    a("--out", default="output", help="output folder (default: ./output)")
    a("--input-dir", default=".", help="folder that relative media file names are read from (default: .)")
    a("--timeout", type=float, default=3600.0, help="seconds one job may take (default 3600)")
    a("--start-timeout", type=float, default=300.0, help="--comfyui: seconds to wait for the start (default 300)")
    a("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
