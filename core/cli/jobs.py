"""The one runner of batch jobs, shared by ``tpsmm animate --batch`` and ``tpsmm render --batch``.

A command turns its CSV rows into :class:`BatchJob` values (what each row reads, what it writes,
a content key) and hands them to a :class:`JobRunner`:

* :meth:`JobRunner.preflight` - before the first job runs or anything is sent anywhere, every clash is
  refused with the line number: a result written by two rows (or twice by one row), a row reading
  what a row writes, and a result that exists already (unless the job is done, or ``overwrite``).
  A result named ``<folder>/<stem>.*`` stands for any extension (``tpsmm render`` knows the name a
  Save node will use, not its extension); ``<stem>_00001.png`` counts as ``<stem>``.
* :meth:`take` / :meth:`done` / :meth:`failed` - resume records and claims
  (:class:`~tpsmm.core.cli.claims.JobStore`), safe to call from several threads (the render fleet).
* :meth:`run` - the serial loop (``tpsmm animate``); :meth:`finish` prints the summary, which says
  which row wrote which files, and gives the exit code.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Callable

from .batch import BatchError, BatchSummary, Row, format_summary, rank_from_env
from .claims import JobStore

__all__ = ["BatchJob", "JobRunner", "ANY_EXT"]

ANY_EXT = ".*"
_COUNTER = re.compile(r"_\d{5,}_?$")


@dataclass
class BatchJob:
    """One row's job.

    Attributes:
        row: the CSV row (``row.line`` names it in messages; line 0: a single job, not from a CSV).
        key: identifies the job's complete content (a hash): its resume record and claim.
        inputs: ``(label, path)`` of the local files it reads.
        outputs: ``(label, path)`` of the files it writes (``path`` may end in :data:`ANY_EXT`).
        payload: whatever the command needs to run it.
    """

    row: Row
    key: str
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    payload: object = None

    @property
    def label(self) -> str:
        return f"row {self.row.row} (line {self.row.line})" if self.row.line else "the job"


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _stem(path: str) -> str:
    """``<folder>/<stem>`` with the extension and ComfyUI's counter removed (what :data:`ANY_EXT` matches)."""
    path = _norm(path)
    folder, name = os.path.split(path[:-len(ANY_EXT)] if path.endswith(ANY_EXT) else os.path.splitext(path)[0])
    return os.path.join(folder, _COUNTER.sub("", name) or name)


def _same(a: str, b: str) -> bool:
    if a.endswith(ANY_EXT) or b.endswith(ANY_EXT):
        return _stem(a) == _stem(b)
    return _norm(a) == _norm(b)


def _existing(path: str) -> str | None:
    """The file ``path`` names if it exists (for :data:`ANY_EXT`: the first file of that stem)."""
    if not path.endswith(ANY_EXT):
        return path if os.path.lexists(path) else None
    folder, stem = os.path.split(_stem(path))
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    return next((os.path.join(os.path.dirname(path), n) for n in names if _stem(os.path.join(folder, n)) == _stem(path)
                 and not n.startswith(".")), None)


class JobRunner:
    """Pre-flight, claims, resume records and the summary of one batch.

    Args:
        command: ``animate`` or ``render`` (messages, summary).
        batch: the CSV path (messages); ``None`` for a single job (no records, no claims).
        store_dir: folder of the resume records (``<store_dir>/.tpsmm-jobs``).
        exists_hint: how to get past an existing result (ends the "exists already" line).
    """

    def __init__(self, command: str, batch: str | None, store_dir: str, *,
                 exists_hint: str = "move it away or use another --out"):
        self.command, self.batch, self.exists_hint = command, batch, exists_hint
        self.store = JobStore(store_dir) if batch else None
        self.summary = BatchSummary()

    def _where(self, job: BatchJob) -> str:
        return f"{self.batch} line {job.row.line}: " if self.batch else ""

    def preflight(self, jobs: list[BatchJob], *, overwrite: bool = False) -> None:
        """Refuse (:class:`BatchError`, one line) every clash between rows and every existing result."""
        written: list[tuple[str, str, BatchJob]] = []
        for job in jobs:
            for label, path in job.outputs:
                for _, other, owner in written:
                    if _same(path, other):
                        raise BatchError(f"{self._where(job)}{label} {path} is also the output of line "
                                         f"{owner.row.line}")
                written.append((label, path, job))
        for job in jobs:
            for label, path in job.inputs:
                owner = next((o for _, out, o in written if _same(path, out)), None)
                if owner is not None:
                    raise BatchError(f"{self._where(job)}{label} {path} is written by line {owner.row.line}; "
                                     "a batch cannot read what it writes")
        for job in jobs:
            if overwrite or (self.store is not None and self.store.is_done(job.key)):
                continue
            for label, path in job.outputs:
                if (found := _existing(path)) is not None:
                    raise BatchError(f"{self._where(job)}{label} {found} exists already; not overwriting it "
                                     f"({self.exists_hint})")

    def take(self, job: BatchJob) -> bool:
        """Whether this process runs ``job`` (False: done earlier or claimed by another process)."""
        if self.store is not None and (self.store.is_done(job.key) or not self.store.claim(job.key)):
            self.summary.skipped.append(job.row)
            return False
        return True

    def done(self, job: BatchJob, files: list[str]) -> None:
        if self.store is not None:
            self.store.mark_done(job.key, files)
        self.summary.rendered.append((job.row, list(files)))

    def failed(self, job: BatchJob, message: str) -> None:
        if self.store is not None:
            self.store.release(job.key)
            print(f"tpsmm {self.command}: {job.label} failed: {message}", file=sys.stderr)
        self.summary.failed.append((job.row, message))

    def run(self, jobs: list[BatchJob], run_one: Callable[[BatchJob], list[str]]) -> None:
        """Run ``jobs`` one after another; ``run_one(job)`` returns the files it wrote. Ctrl-C stops at once."""
        for job in jobs:
            if not self.take(job):
                continue
            try:
                files = run_one(job)
            except KeyboardInterrupt:
                if self.store is not None:
                    self.store.release(job.key)
                raise
            except Exception as exc:  # noqa: BLE001 - a row's failure is reported and the batch goes on
                text = str(exc).strip()
                self.failed(job, text.splitlines()[0] if text else type(exc).__name__)
                continue
            self.done(job, files)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def finish(self) -> int:
        """Print the summary (batches); 0 when no job failed, else 1."""
        if self.batch:
            rank, world = rank_from_env()
            print(format_summary(self.command, self.summary, rank=rank, world=world), file=sys.stderr)
        return 0 if self.summary.ok else 1
