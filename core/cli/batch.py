"""Batch jobs from a CSV file: parsing, torchrun sharding, resume records and claims.

Used by ``tpsmm animate --batch`` and ``tpsmm render --batch`` (through :mod:`~tpsmm.core.cli.jobs`).

* ``JOBS.csv``: a header of column names, then one job per row. Every problem (an unreadable line,
  a short or long row, a duplicate or unknown column) is reported with its line number before any
  job runs. Fully blank rows are skipped; an empty cell means "not set".
* Sharding: rank ``r`` of ``w`` (``RANK``/``WORLD_SIZE``, else ``LOCAL_RANK``/``LOCAL_WORLD_SIZE``, as set
  by ``torchrun``) takes rows ``i`` with ``i % w == r``.
* Resume and sharing an output folder: see :class:`~tpsmm.core.cli.claims.JobStore`.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["BatchError", "Row", "BatchSummary", "read_rows", "rank_from_env", "shard", "format_summary"]


class BatchError(ValueError):
    """A batch file or the batch environment is unusable; the message names the file and line."""


@dataclass(frozen=True)
class Row:
    """One data row: ``row`` (1-based data row), ``line`` (line in the file), ``values`` (column -> cell)."""

    row: int
    line: int
    values: dict


@dataclass
class BatchSummary:
    """Outcome of a batch: rows rendered, skipped (done earlier or claimed by another process), failed."""

    rendered: list = field(default_factory=list)  # (Row, [files written])
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)   # (Row, message)

    @property
    def ok(self) -> bool:
        return not self.failed


def read_rows(path: str, *, check_column: Callable[[str], None] | None = None) -> list[Row]:
    """Parse ``path``; ``check_column(name)`` raises ``ValueError`` for a column the job cannot use.

    Raises:
        BatchError: naming the file and line of the first problem.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = list(_records(f, path))
    except FileNotFoundError:
        raise BatchError(f"{path}: batch file not found") from None
    except IsADirectoryError:
        raise BatchError(f"{path}: is a folder, not a batch CSV file") from None
    except UnicodeDecodeError:
        raise BatchError(f"{path}: not a UTF-8 text CSV file") from None
    if not lines or not any(c.strip() for c in lines[0][1]):
        raise BatchError(f"{path}: empty batch file (expected a header line of column names)")
    header = [c.strip() for c in lines[0][1]]
    seen = set()
    for name in header:
        if not name:
            raise BatchError(f"{path} line {lines[0][0]}: empty column name in the header")
        if name in seen:
            raise BatchError(f"{path} line {lines[0][0]}: column {name!r} appears twice")
        seen.add(name)
        if check_column is not None:
            try:
                check_column(name)
            except ValueError as exc:
                raise BatchError(f"{path} line {lines[0][0]}: column {name!r}: {exc}") from None
    rows = []
    for line, cells in lines[1:]:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise BatchError(f"{path} line {line}: {len(cells)} cells, but the header has {len(header)} columns")
        rows.append(Row(row=len(rows) + 1, line=line, values={h: c for h, c in zip(header, cells) if c.strip()}))
    if not rows:
        raise BatchError(f"{path}: no job rows after the header")
    return rows


def _records(f, path: str):
    reader = csv.reader(f, strict=True)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise BatchError(f"{path} line {reader.line_num}: malformed CSV ({exc})") from None
        if any("\x00" in c for c in cells):
            raise BatchError(f"{path} line {reader.line_num}: contains a NUL byte (not a text CSV file?)")
        yield reader.line_num, cells


def rank_from_env(env=None) -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment; ``(0, 1)`` when not launched by it."""
    env = os.environ if env is None else env
    for r, w in (("RANK", "WORLD_SIZE"), ("LOCAL_RANK", "LOCAL_WORLD_SIZE")):
        if r in env:
            try:
                rank, world = int(env[r]), int(env.get(w, "1"))
            except ValueError:
                raise BatchError(f"{r}={env[r]!r}, {w}={env.get(w)!r}: expected integers") from None
            if world < 1 or not 0 <= rank < world:
                raise BatchError(f"{r}={rank} is outside the world size {w}={world}")
            return rank, world
    return 0, 1


def shard(items: list, rank: int, world: int) -> list:
    """This rank's share: items ``i`` with ``i % world == rank``."""
    return [x for i, x in enumerate(items) if i % world == rank]


def format_summary(command: str, summary: BatchSummary, *, rank: int = 0, world: int = 1) -> str:
    tag = f"rank {rank}/{world}: " if world > 1 else ""
    lines = [f"tpsmm {command}: {tag}{len(summary.rendered)} rendered, {len(summary.skipped)} skipped "
             f"(done earlier or by another process), {len(summary.failed)} failed"]
    lines += [f"  row {row.row} (line {row.line}) wrote {', '.join(files) or 'no file'}"
              for row, files in summary.rendered]
    lines += [f"  row {row.row} (line {row.line}): {message}" for row, message in summary.failed]
    return "\n".join(lines)
