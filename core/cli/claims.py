"""Resume records and claims of batch jobs in an output folder shared by several processes.

Layout under ``<out>/.tpsmm-jobs/``:

* ``<key>.done`` — JSON ``{"files": [paths relative to out]}``, written atomically when a job finished.
  A job is done when its record exists and all its files are still there.
* ``<key>.claim`` — created with ``O_EXCL`` by the process that renders the job (JSON with host, pid,
  time). Another process skips a claimed job. A claim is stale, and taken over, when its process is
  gone (same host) or it was not refreshed for ``stale_after`` seconds (any host); a holder refreshes
  its claims every ``stale_after / 4`` seconds from a background thread.

``key`` is chosen by the caller and must identify the job's complete content (e.g. a hash).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time

from ..media.atomic import atomic_write

__all__ = ["JobStore"]

FOLDER = ".tpsmm-jobs"


class JobStore:
    """Done records and claims in ``out_dir``.

    Args:
        out_dir: the batch's output folder.
        stale_after: seconds after which an unrefreshed claim may be taken over.
    """

    def __init__(self, out_dir: str, *, stale_after: float = 120.0):
        self.out_dir, self.stale_after = os.path.abspath(out_dir), float(stale_after)
        self.folder = os.path.join(self.out_dir, FOLDER)
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _path(self, key: str, kind: str) -> str:
        return os.path.join(self.folder, f"{key}.{kind}")

    def is_done(self, key: str) -> bool:
        try:
            with open(self._path(key, "done"), encoding="utf-8") as f:
                files = json.load(f)["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return all(isinstance(p, str) and os.path.exists(os.path.join(self.out_dir, p)) for p in files)

    def claim(self, key: str) -> bool:
        """Take the job; False when another live process holds it."""
        os.makedirs(self.folder, exist_ok=True)
        path = self._path(key, "claim")
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if not self._stale(path):
                    return False
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}, f)
            with self._lock:
                self._held.add(key)
            self._start_refresh()
            return True
        return False

    def _stale(self, path: str) -> bool:
        try:
            age = time.time() - os.stat(path).st_mtime
            with open(path, encoding="utf-8") as f:
                owner = json.load(f)
        except FileNotFoundError:
            return True
        except (OSError, ValueError):
            return age > self.stale_after   # being written, or garbage: only age decides
        if age > self.stale_after:
            return True
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
            return not _alive(owner["pid"])
        return False

    def release(self, key: str) -> None:
        with self._lock:
            self._held.discard(key)
        try:
            os.remove(self._path(key, "claim"))
        except FileNotFoundError:
            pass

    def mark_done(self, key: str, files: list[str]) -> None:
        """Record the job's files (absolute or relative to ``out_dir``) and release its claim."""
        rel = [os.path.relpath(os.path.abspath(os.path.join(self.out_dir, p)), self.out_dir) for p in files]

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"files": rel}, f)

        atomic_write(self._path(key, "done"), write)
        self.release(key)

    def close(self) -> None:
        """Stop refreshing and drop every claim still held."""
        self._stop.set()
        for key in list(self._held):
            self.release(key)

    def _start_refresh(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._refresh, name="tpsmm-claims", daemon=True)
            self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(self.stale_after / 4):
            with self._lock:
                held = list(self._held)
            for key in held:
                try:
                    os.utime(self._path(key, "claim"))
                except OSError:
                    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
