"""``tpsmm animate --batch JOBS.csv``: one animation per CSV row, without ComfyUI.

Columns: ``source``, ``driving``, ``out`` (required unless given on the command line) and any other
``tpsmm animate`` option by its long name (``mode``, ``strength``, ``reference-frame`` or
``reference_frame``, ``side-by-side`` with true/false ...). An empty cell keeps the command line's value.
Every row is checked (columns, values) and every clash between rows (an output written twice, a row
reading another row's output, a result that exists already without ``--overwrite``) is refused with the
line number before the first job runs (:mod:`~tpsmm.core.cli.jobs`). Resume, claims
shared by several processes on one output folder, and torchrun sharding come from
:mod:`~tpsmm.core.cli.jobs`; the records live next to the first
row's output (``<folder of out>/.tpsmm-jobs``).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
from typing import Callable

from .batch import BatchError, rank_from_env, read_rows, shard
from .jobs import BatchJob, JobRunner

__all__ = ["batch_options", "run_batch"]

NOT_PER_ROW = {"help", "jobs_csv", "quiet", "func", "batch_options"}
INPUTS = ("source", "driving", "checkpoint")
OUTPUTS = ("out", "save_flow", "save_occlusion")
BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def batch_options(parser: argparse.ArgumentParser) -> dict:
    """``{name: action}`` of the options a CSV column may set (long option names, ``-`` written as ``_``)."""
    return {opt[2:].replace("-", "_"): a for a in parser._actions if a.dest not in NOT_PER_ROW
            for opt in a.option_strings if opt.startswith("--")}


def _convert(action: argparse.Action, text: str):
    if action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction):
        if text.strip().lower() not in BOOL_WORDS:
            raise ValueError(f"expected true or false, got {text!r}")
        return BOOL_WORDS[text.strip().lower()]
    value = action.type(text) if action.type else text
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def _row_args(args, options: dict, values: dict, where: str):
    ns = copy.copy(args)
    for column, text in values.items():
        action = options[column.replace("-", "_")]
        try:
            setattr(ns, action.dest, _convert(action, text))
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise BatchError(f"{where}: column {column!r}: {exc}") from None
    for name in ("source", "driving", "out"):
        if not getattr(ns, name, None):
            raise BatchError(f"{where}: no {name} (add a {name!r} column or pass --{name})")
    return ns


def _key(ns) -> str:
    data = {k: v for k, v in sorted(vars(ns).items()) if k not in NOT_PER_ROW}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _job(row, ns) -> BatchJob:
    outputs = [(name.replace("_", "-"), getattr(ns, name)) for name in OUTPUTS if getattr(ns, name, None)]
    inputs = [(name, getattr(ns, name)) for name in INPUTS if getattr(ns, name, None)]
    return BatchJob(row=row, key=_key(ns), inputs=inputs, outputs=outputs, payload=ns)


def run_batch(args, run_one: Callable[[argparse.Namespace], int]) -> int:
    """Run this rank's rows of ``args.jobs_csv`` with ``run_one(row_args)``; prints a summary."""
    options = args.batch_options

    def check_column(name: str) -> None:
        if name.replace("-", "_") not in options:
            raise ValueError("not a tpsmm animate option (e.g. source, driving, out, mode, strength)")

    rows = read_rows(args.jobs_csv, check_column=check_column)
    jobs = [_job(row, _row_args(args, options, row.values, f"{args.jobs_csv} line {row.line}")) for row in rows]
    runner = JobRunner("animate", args.jobs_csv, os.path.dirname(os.path.abspath(jobs[0].payload.out)),
                       exists_hint="move it away, or pass --overwrite")
    try:
        runner.preflight(jobs, overwrite=bool(getattr(args, "overwrite", False)))
        rank, world = rank_from_env()

        def one(job: BatchJob) -> list[str]:
            run_one(job.payload)
            return [os.path.abspath(path) for _, path in job.outputs]

        runner.run(shard(jobs, rank, world), one)
    finally:
        runner.close()
    return runner.finish()
