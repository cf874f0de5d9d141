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

from .exchange import DEFAULT_MAX_DOWNLOAD_MB, DEFAULT_MAX_RESPONSE_MB

__all__ = ["register"]

ENV_COMFYUI = "TPSMM_COMFYUI"
NAME_INPUT = "filename_prefix"   # the input by which a Save node names its results


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

    limits = {"timeout": args.timeout, "max_response_mb": args.max_response, "max_download_mb": args.max_download}
    if args.server:
        return contextlib.nullcontext([ComfyServer(url, **limits) for url in args.server])
    comfy = args.comfyui or os.environ.get(ENV_COMFYUI)
    if not comfy:
        raise RenderError(f"no ComfyUI to render on: pass --server URL (repeatable) or --comfyui DIR "
                          f"(or set {ENV_COMFYUI})")
    return LocalComfyUI(comfy, models_dir=args.models_dir, devices=_devices(args.cpu), start_timeout=args.start_timeout,
                        **limits)


def _precheck(args) -> None:
    """Checks that need no server, done before any is contacted or started."""
    from .prompt import RenderError, parse_override

    for flag, seconds in (("--timeout", args.timeout), ("--start-timeout", args.start_timeout)):
        if not seconds > 0:
            raise RenderError(f"{flag} {seconds:g}: must be a positive number of seconds")
    for flag, size in (("--max-response", args.max_response), ("--max-download", args.max_download)):
        if not size > 0:
            raise RenderError(f"{flag} {size:g}: must be a positive number of MiB")
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


def _jobs(args, schemas: dict, servers, fleet) -> list:
    """One :class:`BatchJob` per row (or one for the workflow), each checked; media inputs checked to be media."""
    from ..core.cli.batch import Row, read_rows
    from .fleet import RenderJob
    from .prompt import Override, apply_overrides, check_target, load_workflow, parse_override, validate

    where = servers[0].url if len(servers) == 1 else "every server"
    base = apply_overrides(load_workflow(args.workflow, schemas), [parse_override(s) for s in args.set], schemas)
    if not args.batch:
        return [_job(args, fleet, Row(row=1, line=0, values={}), RenderJob(validate(base, schemas, server=where)))]

    def check_column(name: str) -> None:
        node, dot, inp = name.rpartition(".")
        if not dot or not node or not inp:
            raise ValueError("not a NODE.input target (e.g. 2.file)")
        try:
            check_target(base, schemas, node, inp, what="")
        except Exception as exc:
            raise ValueError(str(exc).split(": ", 1)[-1]) from None

    jobs = []
    for row in read_rows(args.batch, check_column=check_column):
        tag = f"{args.batch} line {row.line}"
        overrides = [Override(*k.rsplit(".", 1), v) for k, v in row.values.items()]
        try:
            prompt = validate(apply_overrides(base, overrides, schemas, what=tag), schemas, server=where)
        except Exception as exc:
            raise type(exc)(f"{tag}: {exc}") from None
        named = any(o.input == NAME_INPUT for o in overrides)     # the row names its results itself
        jobs.append(_job(args, fleet, row, RenderJob(prompt, folder="" if named else f"row-{row.row}")))
    return jobs


def _check_media(args, fleet, jobs) -> None:
    """Every local media input is media (after the pre-flight: a clash is the better message)."""
    from .prompt import RenderError

    for job in jobs:
        try:
            fleet.local_media(job.payload.prompt)
        except RenderError as exc:
            raise RenderError(f"{args.batch} line {job.row.line}: {exc}" if args.batch else str(exc)) from None


def _job(args, fleet, row, render):
    """The :class:`BatchJob` of one render: its media inputs and the results its Save nodes will write."""
    from ..core.cli.jobs import ANY_EXT, BatchJob

    media = fleet.media_paths(render.prompt)
    outputs = []
    for nid, node in render.prompt.items():
        prefix = node.get("inputs", {}).get(NAME_INPUT)
        if fleet.schemas[node["class_type"]].get("output_node") and isinstance(prefix, str) and "%" not in prefix:
            outputs.append((f"{nid}.{NAME_INPUT}", os.path.join(args.out, render.folder, prefix) + ANY_EXT))
    key = hashlib.sha256(json.dumps([render.prompt, render.folder], sort_keys=True, default=str).encode())
    return BatchJob(row=row, key=key.hexdigest()[:24], inputs=[(f"{nid}.{name}", path) for nid, name, path in media],
                    outputs=outputs, payload=render)


def _render(args, servers) -> int:
    from ..core.cli.batch import rank_from_env, shard
    from ..core.cli.jobs import JobRunner
    from .fleet import Fleet
    from .prompt import RenderError

    schemas = _schemas(servers)
    fleet = Fleet(servers, out_dir=args.out, input_dir=args.input_dir, schemas=schemas)
    jobs = _jobs(args, schemas, servers, fleet)
    runner = JobRunner("render", args.batch, args.out)
    runner.preflight(jobs)          # clashes and existing results: before anything is uploaded or queued
    _check_media(args, fleet, jobs)
    jobs = shard(jobs, *rank_from_env()) if args.batch else jobs
    bar = _bar(len(jobs), args.quiet)

    def take(job) -> bool:
        taken = runner.take(job)
        if not taken:
            bar.update(1)
        return taken

    def done(job, files) -> None:
        runner.done(job, files)
        for path in files:
            bar.write(path, file=sys.stdout)
        bar.update(1)

    def failed(job, message) -> None:
        runner.failed(job, message)
        bar.update(1)

    def progress(server, job, value, total) -> None:
        bar.set_postfix_str(f"{job.label} on {server.url}: {value}/{total}", refresh=True)

    try:
        fleet.run(jobs, take=take, done=done, failed=failed, progress=progress)
    finally:
        runner.close()
        bar.close()
    if not args.batch and runner.summary.failed:
        raise RenderError(runner.summary.failed[0][1])
    return runner.finish()


def _bar(total: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="render", unit="job", disable=quiet, file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    _precheck(args)
    with _engine(args) as servers:   # SIGTERM arrives as a KeyboardInterrupt (tpsmm.__main__), like Ctrl-C
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
    a("--timeout", type=float, default=3600.0,
      help="seconds one job may take on a server, uploads and downloads included (default 3600); a server that "
           "answers a request too slowly is dropped and its job run on another")
    a("--max-response", type=float, default=DEFAULT_MAX_RESPONSE_MB, metavar="MiB",
      help=f"largest answer accepted from a server's API (/object_info, /history...; default {DEFAULT_MAX_RESPONSE_MB})")
    a("--max-download", type=float, default=DEFAULT_MAX_DOWNLOAD_MB, metavar="MiB",
      help=f"largest result file accepted (default {DEFAULT_MAX_DOWNLOAD_MB}); files are streamed to disk")
    a("--start-timeout", type=float, default=300.0, help="--comfyui: seconds to wait for the start (default 300)")
    a("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
