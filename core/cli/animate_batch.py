"""``tpsmm animate --batch JOBS.csv``: one animation per CSV row, without ComfyUI.

Columns: ``source``, ``driving``, ``out`` (required unless given on the command line) and any other
``tpsmm animate`` option by its long name (``mode``, ``strength``, ``reference-frame`` or
``reference_frame``, ``side-by-side`` with true/false ...). An empty cell keeps the command line's value.
Every row is checked (columns, values, duplicate outputs) before the first job runs. Resume, claims
shared by several processes on one output folder, and torchrun sharding come from
:mod:`~tpsmm.core.cli.batch` and :mod:`~tpsmm.core.cli.claims`; the records live next to the first
row's output (``<folder of out>/.tpsmm-jobs``).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
from typing import Callable

from .batch import BatchError, BatchSummary, format_summary, rank_from_env, read_rows, shard
from .claims import JobStore

__all__ = ["batch_options", "run_batch"]

NOT_PER_ROW = {"help", "jobs_csv", "quiet", "func", "batch_options"}
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


def run_batch(args, run_one: Callable[[argparse.Namespace], int]) -> int:
    """Run this rank's rows of ``args.jobs_csv`` with ``run_one(row_args)``; prints a summary."""
    options = args.batch_options

    def check_column(name: str) -> None:
        if name.replace("-", "_") not in options:
            raise ValueError("not a tpsmm animate option (e.g. source, driving, out, mode, strength)")

    rows = read_rows(args.jobs_csv, check_column=check_column)
    jobs, outs = [], {}
    for row in rows:
        ns = _row_args(args, options, row.values, f"{args.jobs_csv} line {row.line}")
        out = os.path.abspath(ns.out)
        if out in outs:
            raise BatchError(f"{args.jobs_csv} line {row.line}: out {ns.out} is also the output of line {outs[out]}")
        outs[out] = row.line
        jobs.append((row, ns))
    rank, world = rank_from_env()
    store = JobStore(os.path.dirname(os.path.abspath(jobs[0][1].out)))
    summary = BatchSummary()
    try:
        for row, ns in shard(jobs, rank, world):
            key = _key(ns)
            if store.is_done(key) or not store.claim(key):
                summary.skipped.append(row)
                continue
            try:
                run_one(ns)
            except (Exception, KeyboardInterrupt) as exc:
                store.release(key)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                summary.failed.append((row, message))
                print(f"tpsmm animate: row {row.row} (line {row.line}) failed: {message}", file=sys.stderr)
                continue
            outputs = [p for p in (ns.out, ns.save_flow, ns.save_occlusion) if p]
            store.mark_done(key, [os.path.abspath(p) for p in outputs])
            summary.rendered.append(row)
    finally:
        store.close()
    print(format_summary("animate", summary, rank=rank, world=world), file=sys.stderr)
    return 0 if summary.ok else 1
