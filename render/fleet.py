"""Jobs spread over several ComfyUI servers: whichever server is free takes the next job.

One worker thread per server. A server that stops answering (:class:`~.client.ServerDown`) has its job
put back for another server and is dropped after ``max_failures`` such failures; one that drips or
sends too much (:class:`~.client.ServerDropped`) is dropped at once. A job the server ran and failed
(:class:`~.client.JobFailed`, a bad output...) is reported and not retried. Everything a job does on a
server is bounded by ``--timeout`` (:meth:`~.client.ComfyServer.job`). Ctrl-C closes every exchange in
flight and sends ``/interrupt`` to every server; results are written atomically and temporary files
removed, so nothing partial is left.

Jobs are :class:`~tpsmm.core.cli.jobs.BatchJob` values whose ``payload`` is a :class:`RenderJob`.
"""
from __future__ import annotations

import copy
import os
import sys
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

from .client import ComfyServer, ServerDown, ServerDropped, upload_name
from .files import check_media, save_outputs
from .prompt import RenderError, media_inputs, node_label
from .schemas import combo_options, inputs_of

__all__ = ["RenderJob", "Fleet"]


@dataclass
class RenderJob:
    """What one job renders: ``prompt`` (validated, with local media paths) and the ``folder`` of its
    results under ``--out`` (``""``: ``--out`` itself)."""

    prompt: dict
    folder: str = ""


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
        self._why: dict[int, str] = {}   # id(job) -> why the last server could not run it
        self._stop = False

    def media_paths(self, prompt: dict) -> list[tuple[str, str, str]]:
        """``[(node_id, input, path)]`` of every media input, its value read as a local path (unchecked)."""
        return [(nid, name, os.path.normpath(os.path.join(self.input_dir, value)))
                for nid, name in media_inputs(prompt, self.schemas)
                for value in [prompt[nid]["inputs"][name]]]

    def local_media(self, prompt: dict) -> list[tuple[str, str, str]]:
        """``[(node_id, input, local path)]`` of media inputs naming a file here; each checked to be media."""
        found = []
        for nid, name, path in self.media_paths(prompt):
            value = prompt[nid]["inputs"][name]
            label = f"{node_label(prompt, nid)} input {name!r}"
            if os.path.isfile(path):
                check_media(path, label)
                found.append((nid, name, path))
            elif value not in (combo_options(inputs_of(self.schemas[prompt[nid]["class_type"]])[name]) or []):
                raise RenderError(f"{label}: {value!r} is neither a file here (--input-dir {self.input_dir}) nor "
                                  "in the server's input folder")
        return found

    def _upload(self, server: ComfyServer, prompt: dict) -> dict:
        """``prompt`` with local files uploaded; content-named (:func:`~.client.upload_name`), each sent once."""
        out = copy.deepcopy(prompt)
        for nid, name, path in self.local_media(prompt):
            key = (server.url, upload_name(path))
            if key not in self._uploads:
                self._uploads[key] = server.upload(path, name=key[1])
            out[nid]["inputs"][name] = self._uploads[key]
        return out

    def run(self, jobs: list, *, take: Callable[[object], bool] = lambda job: True,
            done: Callable[[object, list], None], failed: Callable[[object, str], None],
            progress: Callable[[ComfyServer, object, int, int], None] | None = None) -> None:
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
                server.exchanges.abort()   # workers blocked in a read unwind now (their temporary files go)
            for server in self.servers:
                server.interrupt()
            for t in threads:
                t.join(timeout=15)
            raise
        for job in list(self._retry) + list(self._pending):
            why = self._why.get(id(job))
            failed(job, "no ComfyUI server left to run it" + (f"; the last one: {why}" if why else
                                                              " (all stopped answering)"))

    def _next(self):
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
            requeue, reason = False, ""
            try:
                with server.job():
                    entry = server.run(self._upload(server, job.payload.prompt), progress=self._progress_of(server, job))
                    with self._cond:
                        stopping = self._stop
                    if stopping:
                        raise RenderError("interrupted")
                    files = save_outputs(server, entry, self.out_dir, folder=job.payload.folder)
                self._done(job, files)
            except ServerDown as exc:
                failures = self.max_failures + 1 if isinstance(exc, ServerDropped) else failures + 1
                self._why[id(job)] = reason = str(exc)
                requeue = not self._stop
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
                others = bool(alive)
                self._cond.notify_all()
            if requeue and others:
                self.log(f"tpsmm render: {server.url} failed on {job.label} ({reason}); running it on another server")
            if drop:
                if others:
                    self.log(f"tpsmm render: dropping {server.url} (" + ("it answers too slowly or too much)"
                             if failures > self.max_failures else f"{failures} failures to answer)"))
                return

    def _progress_of(self, server: ComfyServer, job):
        if self._progress is None:
            return None
        return lambda value, total: self._progress(server, job, value, total)
