"""Start real ComfyUI servers headless for ``tpsmm render --comfyui DIR``, and stop them again.

One server per visible GPU (``--cuda-device N``), or one with ``--cpu``. Each runs from its own
temporary base folder, so the user's ComfyUI install is not modified: ``custom_nodes`` holds links to
the install's packs plus this pack, ``models`` links to the install's models (and ``--models-dir`` is
added with an extra model paths file), ``input``/``output`` are private. The servers are stopped and
the temporary folders removed on exit, also on Ctrl-C and on errors.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from .client import ComfyServer, ServerDown
from .prompt import RenderError

__all__ = ["pack_root", "LocalComfyUI"]


def pack_root() -> str:
    """The folder ComfyUI loads this pack from (the ``tpsmm`` package folder)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _models_yaml(path: str, models_dir: str) -> None:
    lines = ["tpsmm_render:", f"  base_path: {models_dir!r}", "  tpsmm: |", "    .", "    tpsmm"]
    for name in sorted(os.listdir(models_dir)):
        if os.path.isdir(os.path.join(models_dir, name)) and name != "tpsmm" and name.replace("_", "").isalnum():
            lines.append(f"  {name}: {name}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


class LocalComfyUI:
    """Context manager: ``with LocalComfyUI(dir, ...) as servers:`` -> started :class:`ComfyServer` objects.

    Args:
        comfy_dir: a ComfyUI folder (with ``main.py``).
        models_dir: extra model folder (ComfyUI layout, or a flat folder of TPSMM checkpoints).
        devices: CUDA device ids, one server each; empty: one ``--cpu`` server.
        start_timeout: seconds to wait for ``/object_info`` (in all).
        limits: :class:`ComfyServer` keywords (``timeout``, ``max_response_mb``, ``max_download_mb``).
    """

    def __init__(self, comfy_dir: str, *, models_dir: str | None = None, devices: list[int] = (),
                 start_timeout: float = 300.0, python: str = sys.executable, **limits):
        main = os.path.join(comfy_dir, "main.py")
        if not os.path.isfile(main):
            raise RenderError(f"--comfyui {comfy_dir}: not a ComfyUI folder (no main.py in it)")
        if models_dir is not None and not os.path.isdir(models_dir):
            raise RenderError(f"--models-dir {models_dir}: no such folder")
        self.comfy_dir, self.models_dir = os.path.abspath(comfy_dir), models_dir and os.path.abspath(models_dir)
        self.devices, self.start_timeout, self.python = list(devices), start_timeout, python
        self.limits = limits   # ComfyServer's timeout, max_response_mb, max_download_mb
        self.procs: list[tuple[subprocess.Popen, str, str]] = []   # (process, base folder, log path)
        self.servers: list[ComfyServer] = []

    def _base(self, root: str) -> str:
        nodes = os.path.join(root, "custom_nodes")
        os.makedirs(nodes)
        own = os.path.join(self.comfy_dir, "custom_nodes")
        for name in sorted(os.listdir(own)) if os.path.isdir(own) else []:
            path = os.path.join(own, name)
            if os.path.isdir(path) and "tpsmm" not in name.lower() and not name.startswith((".", "__")):
                os.symlink(os.path.realpath(path), os.path.join(nodes, name))
        os.symlink(pack_root(), os.path.join(nodes, "tpsmm"))
        if os.path.isdir(os.path.join(self.comfy_dir, "models")):
            os.symlink(os.path.join(self.comfy_dir, "models"), os.path.join(root, "models"))
        os.makedirs(os.path.join(root, "empty-frontend"))
        return root

    def _start(self, device: int | None) -> None:
        root = self._base(tempfile.mkdtemp(prefix="tpsmm-comfyui-"))
        port, log = _free_port(), os.path.join(root, "comfyui.log")
        cmd = [self.python, os.path.join(self.comfy_dir, "main.py"), "--base-directory", root, "--listen", "127.0.0.1",
               "--port", str(port), "--database-url", "sqlite:///:memory:", "--disable-api-nodes",
               "--front-end-root", os.path.join(root, "empty-frontend")]
        cmd += ["--cpu"] if device is None else ["--cuda-device", str(device)]
        if self.models_dir:
            _models_yaml(os.path.join(root, "models.yaml"), self.models_dir)
            cmd += ["--extra-model-paths-config", os.path.join(root, "models.yaml")]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.procs.append((proc, root, log))
        self.servers.append(ComfyServer(f"http://127.0.0.1:{port}", **self.limits))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        for (proc, _, log), server in zip(self.procs, self.servers):
            while True:
                if proc.poll() is not None:
                    raise RenderError(f"ComfyUI in {self.comfy_dir} exited during start (code {proc.returncode}): "
                                      f"{_last_error(log)}")
                try:
                    info = server.object_info(deadline=min(deadline, time.monotonic() + server.request_timeout))
                    break
                except ServerDown:
                    if time.monotonic() > deadline:
                        raise RenderError(f"ComfyUI in {self.comfy_dir} did not answer within "
                                          f"{self.start_timeout:g} s: {_last_error(log)}") from None
                    time.sleep(1.0)
            if not any(name.startswith("TPSMM_") for name in info):
                raise RenderError(f"ComfyUI in {self.comfy_dir} could not import the tpsmm pack: "
                                  f"{_last_error(log, 'tpsmm')}")

    def __enter__(self) -> list[ComfyServer]:
        try:
            for device in self.devices or [None]:
                self._start(device)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.servers

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every server started here and remove their temporary folders."""
        for proc, _, _ in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, root, _ in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            shutil.rmtree(root, ignore_errors=True)
        self.procs, self.servers = [], []


def _last_error(log: str, about: str = "") -> str:
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        return "no log"
    picked = [ln for ln in lines if about in ln and ("Error" in ln or "FAILED" in ln)] if about else []
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (picked or errors or lines or ["no output"])[-1][:300]
