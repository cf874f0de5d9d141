"""Jobs spread over several ComfyUI servers: whichever server is free takes the next job.

One worker thread per server. A server that stops answering (:class:`~.client.ServerDown`) has its job
put back for another server and is dropped after ``max_failures`` such failures; a job the server ran
and failed (:class:`~.client.JobFailed`, a bad output...) is reported and not retried. Ctrl-C sends
``/interrupt`` to every server; results are written atomically, so nothing partial is left.
"""
from __future__ import annotations

import copy
import os
import sys
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

from .client import ComfyServer, ServerDown
from .files import check_media, save_outputs
from .prompt import RenderError, media_inputs, node_label
from .schemas import combo_options, inputs_of

__all__ = ["RenderJob", "Fleet"]


@dataclass
class RenderJob:
    """One render: ``prompt`` (validated, with local media paths), ``label`` for messages, ``tag`` for callers."""

    prompt: dict
    label: str = "job"
    tag: object = None
    key: str = ""


class Fleet:
    """Render jobs on ``servers``.

    Args:
        servers: the ComfyUI servers (all serve the schemas the prompts were validated against).
        out_dir: results go here (see :mod:`.files`).
        input_dir: folder that relative media names are looked up in.
        schemas: served node schemas (to find the media inputs).
        max_failures: connection failures after which a server is dropped.
        log: one-line messages (defaults to stderr).
    """

    def __init__(self, servers: list[ComfyServer], *, out_dir: str, input_dir: str, schemas: dict,
                 max_failures: int = 3, log: Callable[[str], None] | None = None):
        self.servers, self.out_dir, self.input_dir, self.schemas = list(servers), out_dir, input_dir, schemas
        self.max_failures = max_failures
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self._cond = threading.Condition()
        self._uploads: dict = {}
        self._stop = False

    def local_media(self, prompt: dict) -> list[tuple[str, str, str]]:
        """``[(node_id, input, local path)]`` of media inputs naming a file here; each checked to be media."""
        found = []
        for nid, name in media_inputs(prompt, self.schemas):
            value = prompt[nid]["inputs"][name]
            path = value if os.path.isabs(value) else os.path.join(self.input_dir, value)
            label = f"{node_label(prompt, nid)} input {name!r}"
            if os.path.isfile(path):
                check_media(path, label)
                found.append((nid, name, path))
            elif value not in (combo_options(inputs_of(self.schemas[prompt[nid]["class_type"]])[name]) or []):
                raise RenderError(f"{label}: {value!r} is neither a file here (--input-dir {self.input_dir}) nor "
                                  "in the server's input folder")
        return found

    def _upload(self, server: ComfyServer, prompt: dict) -> dict:
        out = copy.deepcopy(prompt)
        for nid, name, path in self.local_media(prompt):
            key = (server.url, os.path.abspath(path), os.path.getmtime(path), os.path.getsize(path))
            if key not in self._uploads:
                self._uploads[key] = server.upload(path)
            out[nid]["inputs"][name] = self._uploads[key]
        return out

    def run(self, jobs: list[RenderJob], *, take: Callable[[RenderJob], bool] = lambda job: True,
            done: Callable[[RenderJob, list], None], failed: Callable[[RenderJob, str], None],
            progress: Callable[[ComfyServer, RenderJob, int, int], None] | None = None) -> None:
        """Render ``jobs``; ``take(job)`` may decline one (done or claimed elsewhere)."""
        self._pending, self._retry, self._in_flight = deque(jobs), deque(), 0
        self._done, self._failed, self._take, self._progress = done, failed, take, progress
        alive = list(self.servers)
        threads = [threading.Thread(target=self._worker, args=(s, alive), daemon=True, name=f"tpsmm-{s.url}")
                   for s in self.servers]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.2)
        except BaseException:
            with self._cond:
                self._stop = True
            for server in self.servers:
                server.interrupt()
            for t in threads:
                t.join(timeout=15)
            raise
        for job in list(self._retry) + list(self._pending):
            failed(job, "no ComfyUI server left to run it (all stopped answering)")

    def _next(self) -> RenderJob | None:
        with self._cond:
            while not self._stop:
                if self._retry:
                    job = self._retry.popleft()
                elif self._pending:
                    job = self._pending.popleft()
                    if not self._take(job):
                        continue
                elif self._in_flight == 0:
                    return None
                else:
                    self._cond.wait(0.5)
                    continue
                self._in_flight += 1
                return job
            return None

    def _worker(self, server: ComfyServer, alive: list) -> None:
        failures = 0
        while (job := self._next()) is not None:
            requeue = False
            try:
                entry = server.run(self._upload(server, job.prompt), progress=self._progress_of(server, job))
                with self._cond:
                    stopping = self._stop
                if stopping:
                    raise RenderError("interrupted")
                self._done(job, save_outputs(server, entry, self.out_dir))
            except ServerDown as exc:
                failures += 1
                requeue = not self._stop
                self.log(f"tpsmm render: {server.url} failed on {job.label} ({exc}); running it on another server")
            except RenderError as exc:
                self._failed(job, str(exc))
            except OSError as exc:
                self._failed(job, f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
            with self._cond:
                self._in_flight -= 1
                if requeue:
                    self._retry.append(job)
                drop = failures >= self.max_failures
                if drop:
                    alive.remove(server)
                self._cond.notify_all()
            if drop:
                self.log(f"tpsmm render: dropping {server.url} after {failures} failures to answer")
                return

    def _progress_of(self, server: ComfyServer, job: RenderJob):
        if self._progress is None:
            return None
        return lambda value, total: self._progress(server, job, value, total)
