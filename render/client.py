"""One ComfyUI server over its HTTP API: schemas, uploads, queueing, ``/ws`` progress, results.

Standard library only. Errors are :class:`ServerDown` (the server did not answer: the job may be run
again elsewhere) or :class:`JobFailed` (the server ran the workflow and a node failed: running it
elsewhere would fail the same way); both are :class:`~.prompt.RenderError` with a one-line message.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Callable

from .prompt import RenderError
from .ws import WebSocket

__all__ = ["ServerDown", "JobFailed", "ComfyServer"]


class ServerDown(RenderError):
    """The server cannot be reached or stopped answering."""


class JobFailed(RenderError):
    """The server rejected or failed the workflow."""


class ComfyServer:
    """Client of one ComfyUI server.

    Args:
        url: e.g. ``http://127.0.0.1:8188``.
        timeout: seconds one job may take.
        request_timeout: seconds one HTTP request may take before the server counts as not answering.
    """

    def __init__(self, url: str, *, timeout: float = 3600.0, request_timeout: float = 30.0):
        if not url.startswith(("http://", "https://")):
            url = "http://" + url
        self.url, self.timeout, self.request_timeout = url.rstrip("/"), float(timeout), float(request_timeout)
        self.client_id = uuid.uuid4().hex
        self.running: str | None = None   # prompt id in flight

    def __repr__(self) -> str:
        return self.url

    def request(self, path: str, *, data: bytes | None = None, headers: dict | None = None) -> bytes:
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=self.request_timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            if exc.code == 400 and path == "/prompt":
                raise JobFailed(f"{self.url} rejected the workflow: {_describe_rejection(body)}") from None
            raise ServerDown(f"{self.url}{path.split('?')[0]}: HTTP {exc.code} {body[:120].strip()}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServerDown(f"cannot reach ComfyUI at {self.url}: {getattr(exc, 'reason', exc)}") from None

    def get_json(self, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        raw = self.request(path, data=data, headers=headers)
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise ServerDown(f"{self.url}{path.split('?')[0]}: the answer is not JSON; is this a ComfyUI server?") \
                from None

    def object_info(self) -> dict:
        """The served node schemas; :class:`ServerDown` when the URL is not a ComfyUI server."""
        try:
            info = self.get_json("/object_info")
        except ServerDown as exc:
            if "HTTP" in str(exc) or "not JSON" in str(exc):
                raise ServerDown(f"{self.url}: not a ComfyUI server (GET /object_info failed)") from None
            raise
        if not isinstance(info, dict) or not info or not all(isinstance(v, dict) and "input" in v
                                                              for v in list(info.values())[:20]):
            raise ServerDown(f"{self.url}: not a ComfyUI server (GET /object_info lists no node schemas)")
        return info

    def upload(self, path: str, *, subfolder: str = "tpsmm") -> str:
        """Upload a local file into the server's input folder; the name to use in the prompt."""
        boundary = uuid.uuid4().hex
        with open(path, "rb") as f:
            content = f.read()
        name = os.path.basename(path).replace('"', "_")
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="subfolder"\r\n\r\n{subfolder}\r\n'.encode(),
                 f'--{boundary}\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\ntrue\r\n'.encode(),
                 (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                  "Content-Type: application/octet-stream\r\n\r\n").encode(), content, f"\r\n--{boundary}--\r\n".encode()]
        raw = self.request("/upload/image", data=b"".join(parts),
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        reply = json.loads(raw)
        return f"{reply['subfolder']}/{reply['name']}" if reply.get("subfolder") else reply["name"]

    def queue(self, prompt: dict) -> str:
        reply = self.get_json("/prompt", {"prompt": prompt, "client_id": self.client_id})
        if not isinstance(reply, dict) or "prompt_id" not in reply:
            raise ServerDown(f"{self.url}/prompt: unexpected answer {str(reply)[:120]}")
        return reply["prompt_id"]

    def run(self, prompt: dict, *, progress: Callable[[int, int], None] | None = None) -> dict:
        """Queue ``prompt`` and wait for it; its ``/history`` entry (``outputs`` of the output nodes)."""
        try:
            ws = WebSocket(self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}", timeout=10)
        except OSError:
            ws = None   # progress then comes from /history polling alone
        try:
            self.running = self.queue(prompt)
            return self._wait(self.running, ws, progress)
        finally:
            self.running = None
            if ws is not None:
                ws.close()

    def _wait(self, prompt_id: str, ws, progress) -> dict:
        deadline, next_poll = time.monotonic() + self.timeout, 0.0
        while time.monotonic() < deadline:
            if ws is not None:
                try:
                    message = ws.receive(timeout=1.0)
                except OSError:
                    ws, message = None, None   # a dead socket: let /history decide whether the server is gone
                data = (message or {}).get("data") or {}
                if message and data.get("prompt_id") == prompt_id:
                    if message.get("type") == "progress" and progress:
                        progress(int(data.get("value", 0)), int(data.get("max", 0)))
                    if message.get("type") in ("execution_success", "execution_error", "execution_interrupted") or (
                            message.get("type") == "executing" and data.get("node") is None):
                        next_poll = 0.0
            else:
                time.sleep(0.5)
            if time.monotonic() >= next_poll:
                history = self.get_json(f"/history/{prompt_id}")
                entry = history.get(prompt_id) if isinstance(history, dict) else None
                if entry and (entry.get("status") or {}).get("completed") is not None:
                    status = entry.get("status") or {}
                    if status.get("status_str", "success") != "success":
                        raise JobFailed(_describe_failure(self.url, status))
                    return entry
                next_poll = time.monotonic() + (2.0 if ws is not None else 0.5)
        self.interrupt()
        raise JobFailed(f"{self.url}: the job did not finish within --timeout {self.timeout:g} s")

    def download(self, item: dict) -> bytes:
        query = urllib.parse.urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                        "type": item.get("type", "output")})
        return self.request(f"/view?{query}")

    def interrupt(self) -> None:
        """Stop this client's prompt on the server (best effort, never raises)."""
        try:
            if self.running:
                self.get_json("/queue", {"delete": [self.running]})
            self.request("/interrupt", data=b"{}", headers={"Content-Type": "application/json"})
        except RenderError:
            pass


def _describe_rejection(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200]
    parts = []
    for nid, err in (data.get("node_errors") or {}).items():
        details = "; ".join(f"{e.get('message', '')}: {e.get('details', '')}".strip(": ")
                            for e in err.get("errors", []))
        parts.append(f"node {nid} ({err.get('class_type', '?')}): {details}")
    return " | ".join(parts) or ((data.get("error") or {}).get("message") or body[:200])


def _describe_failure(url: str, status: dict) -> str:
    for event, data in status.get("messages", []):
        if event == "execution_error":
            message = (data.get("exception_message") or "").strip()
            return (f"node {data.get('node_id')} ({data.get('node_type')}) failed on {url}: "
                    f"{message.splitlines()[0] if message else data.get('exception_type', 'error')}")
        if event == "execution_interrupted":
            return f"node {data.get('node_id')} ({data.get('node_type')}): interrupted on {url}"
    return f"{url} reports status {status.get('status_str')!r}"
