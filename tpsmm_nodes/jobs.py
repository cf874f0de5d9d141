"""Batch rendering: one job per CSV row, resumable, shardable over torchrun ranks.

* ``JOBS.csv``: the header names ``--set`` targets (``NODE.input``; NODE = id, title or class_type);
  each row sets those inputs for one render. Empty cells leave the workflow's value.
* Resume: a finished job writes ``<out>/.tpsmm-render/<key>.json`` listing its files, where ``key``
  hashes the job's complete prompt. A rerun skips a job whose record exists and whose files are all
  still there; changing the workflow, ``--set`` values or the row renders it again.
* Failures: a failing job is reported (row, CSV line and the node's message) and the others go on;
  the summary lists the failures and the exit status is non-zero.
* Sharding: rank ``r`` of ``w`` (``RANK``/``WORLD_SIZE``, else ``LOCAL_RANK``/``LOCAL_WORLD_SIZE``, as set
  by ``torchrun``) takes rows ``i`` with ``i % w == r``. No process group is needed.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

from ..core.media.atomic import atomic_write
from .executor import one_line
from .graph import Override, RenderError, apply_overrides

__all__ = ["Job", "BatchSummary", "read_jobs", "rank_from_env", "job_key", "run_batch"]

RECORDS = ".tpsmm-render"


@dataclass(frozen=True)
class Job:
    """One CSV row: ``row`` (1-based data row), ``line`` (line in the file) and its overrides."""

    row: int
    line: int
    overrides: tuple


@dataclass
class BatchSummary:
    rendered: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)   # (Job, message)

    @property
    def ok(self) -> bool:
        return not self.failed


def read_jobs(path: str) -> list[Job]:
    """Parse ``JOBS.csv``; every column must be a ``NODE.input`` target."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = [(reader.line_num, r) for r in reader]
    except FileNotFoundError:
        raise RenderError(f"{path}: batch file not found") from None
    if not header:
        raise RenderError(f"{path}: empty batch file (expected a header of NODE.input columns)")
    targets = []
    for col in header:
        node, dot, name = col.strip().rpartition(".")
        if not dot or not node or not name:
            raise RenderError(f"{path}: column {col!r} is not a NODE.input target (e.g. 2.image)")
        targets.append((node, name))
    jobs = []
    for line, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(targets):
            raise RenderError(f"{path}: line {line} has {len(cells)} cells but the header has {len(targets)} columns")
        ov = tuple(Override(node, name, cell) for (node, name), cell in zip(targets, cells) if cell.strip() != "")
        jobs.append(Job(row=len(jobs) + 1, line=line, overrides=ov))
    return jobs


def rank_from_env(env=None) -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment; ``(0, 1)`` when not launched by it."""
    env = os.environ if env is None else env
    for r, w in (("RANK", "WORLD_SIZE"), ("LOCAL_RANK", "LOCAL_WORLD_SIZE")):
        if r in env:
            try:
                rank, world = int(env[r]), int(env.get(w, "1"))
            except ValueError:
                raise RenderError(f"{r}={env[r]!r}, {w}={env.get(w)!r}: expected integers") from None
            if world < 1 or not 0 <= rank < world:
                raise RenderError(f"{r}={rank} is outside the world size {w}={world}")
            return rank, world
    return 0, 1


def job_key(prompt: dict) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _record_path(out_dir: str, key: str) -> str:
    return os.path.join(out_dir, RECORDS, f"{key}.json")


def _is_done(out_dir: str, key: str) -> bool:
    try:
        with open(_record_path(out_dir, key), encoding="utf-8") as f:
            files = json.load(f)["files"]
    except (OSError, ValueError, KeyError):
        return False
    return all(os.path.isfile(os.path.join(out_dir, p)) for p in files)


def _mark_done(out_dir: str, key: str, job: Job, files: list) -> None:
    path = _record_path(out_dir, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rel = [os.path.relpath(os.path.abspath(p), os.path.abspath(out_dir)) for p in files]
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"row": job.row, "line": job.line, "files": rel}, f)

    atomic_write(path, write)


def run_batch(prompt: dict, jobs: list[Job], render: Callable[[dict], list], *, out_dir: str, registry: dict,
              rank: int = 0, world: int = 1, progress: bool = True, log=None) -> BatchSummary:
    """Render this rank's share of ``jobs``; ``render(prompt) -> files`` does one job."""
    from tqdm import tqdm

    log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
    tag = f"rank {rank}/{world}: " if world > 1 else ""
    mine = [j for i, j in enumerate(jobs) if i % world == rank]
    for job in mine:  # bad targets fail before anything renders
        apply_overrides(prompt, [Override(o.node, o.input, "") for o in job.overrides], registry)
    summary = BatchSummary()
    with tqdm(total=len(mine), desc=f"{tag}render", unit="job", disable=not progress, file=sys.stderr) as bar:
        for job in mine:
            try:
                job_prompt = apply_overrides(prompt, job.overrides, registry)
                key = job_key(job_prompt)
                if _is_done(out_dir, key):
                    summary.skipped.append(job)
                else:
                    _mark_done(out_dir, key, job, render(job_prompt))
                    summary.rendered.append(job)
            except Exception as exc:
                message = one_line(exc)
                summary.failed.append((job, message))
                log(f"tpsmm render: {tag}row {job.row} (line {job.line}) failed: {message}")
            bar.update(1)
    return summary


def format_summary(summary: BatchSummary, *, rank: int = 0, world: int = 1) -> str:
    tag = f"rank {rank}/{world}: " if world > 1 else ""
    lines = [f"tpsmm render: {tag}{len(summary.rendered)} rendered, {len(summary.skipped)} skipped (already done), "
             f"{len(summary.failed)} failed"]
    lines += [f"  row {job.row} (line {job.line}): {message}" for job, message in summary.failed]
    return "\n".join(lines)
