"""A real ComfyUI for tests, started headless on the CPU (found by ``tests/assets.py``: ``TPSMM_COMFYUI``, else
``../shared/comfyui``).

Started as the snapshot's README says (``main.py --cpu --base-directory BASE ...``) with this pack linked into
``BASE/custom_nodes`` (or not, to test a server without it). Nothing here is a stand-in: every test that uses it
talks to ComfyUI's own server and nodes.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyProcess:
    """One headless ComfyUI server. ``url``, ``base`` (its base folder), ``log`` (its output file); ``frontend``: serve
    the installed web frontend (``comfyui-frontend-package``) instead of an empty page."""

    def __init__(self, comfy: Path, base: Path, *, with_pack: bool = True, frontend: bool = False):
        self.base, self.port = base, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for sub in ("custom_nodes", "empty-frontend", "models/tpsmm", "input"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        if with_pack:
            os.symlink(REPO, base / "custom_nodes" / "tpsmm")
        self.log = base / "comfyui.log"
        cmd = [sys.executable, str(comfy / "main.py"), "--cpu", "--base-directory", str(base), "--listen", "127.0.0.1",
               "--port", str(self.port), "--database-url", "sqlite:///:memory:", "--disable-api-nodes",
               *([] if frontend else ["--front-end-root", str(base / "empty-frontend")])]  # frontend: the pip one
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=base, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 240.0) -> "ComfyProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"ComfyUI exited during start:\n{self.log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(self.url + "/object_info/LoadImage", timeout=5):
                    return self
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"ComfyUI did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """Kill the server at once (as a crash would)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def import_failures(self) -> list[str]:
        return [ln for ln in self.log.read_text(errors="replace").splitlines() if "IMPORT FAILED" in ln]
