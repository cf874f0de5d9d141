"""One ComfyUI server over its HTTP API: schemas, uploads, queueing, ``/ws`` progress, results.

Standard library only. Every exchange is bounded in time and size (:mod:`.exchange`): API calls by
``request_timeout`` (at most ``timeout``), and everything a job does - uploads, queueing, waiting,
downloads - by the job's ``timeout`` (``with server.job():``). Errors are :class:`ServerDown` (the
server did not answer: the job may be run again elsewhere; :class:`ServerDropped`: it dripped or sent
too much, and is not used again) or :class:`JobFailed` (the server ran the workflow and a node failed:
running it elsewhere would fail the same way); all are :class:`~.prompt.RenderError` with one line.

Uploaded files are named after their content (``<stem>-<sha256 prefix><ext>`` in the ``tpsmm``
subfolder), so two different local files never share a name on the server.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import urllib.parse
import uuid
from typing import BinaryIO, Callable

from .exchange import (DEFAULT_MAX_DOWNLOAD_MB, DEFAULT_MAX_RESPONSE_MB, MiB, Exchanges, ServerDown, ServerDropped,
                       exchange)
from .prompt import RenderError
from .ws import WebSocket

__all__ = ["ServerDown", "ServerDropped", "JobFailed", "ComfyServer", "upload_name"]

INTERRUPT_SECONDS = 5.0   # budget of the best-effort /interrupt on errors and Ctrl-C
WS_HANDSHAKE_SECONDS = 5.0   # without a /ws answer in time, progress comes from /history polling


class JobFailed(RenderError):
    """The server rejected or failed the workflow."""


def upload_name(path: str) -> str:
    """The server-side name of a local file: ``<stem>-<first 16 hex digits of its sha256><ext>``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    stem, ext = os.path.splitext(os.path.basename(path))
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:64].lstrip(".") or "file"
    return f"{stem}-{digest.hexdigest()[:16]}{re.sub(r'[^A-Za-z0-9.]', '', ext)[:12]}"


class ComfyServer:
    """Client of one ComfyUI server.

    Args:
        url: e.g. ``http://127.0.0.1:8188``.
        timeout: seconds one job may take, all exchanges included (``--timeout``).
        request_timeout: seconds one API exchange may take (capped at ``timeout``).
        max_response_mb: largest JSON answer accepted, MiB (``--max-response``).
        max_download_mb: largest result file accepted, MiB (``--max-download``).
    """

    def __init__(self, url: str, *, timeout: float = 3600.0, request_timeout: float = 30.0,
                 max_response_mb: float = DEFAULT_MAX_RESPONSE_MB, max_download_mb: float = DEFAULT_MAX_DOWNLOAD_MB):
        if not url.startswith(("http://", "https://")):
            url = "http://" + url
        self.url, self.timeout = url.rstrip("/"), float(timeout)
        self.request_timeout = min(float(request_timeout), self.timeout)
        self.max_response, self.max_download = int(max_response_mb * MiB), int(max_download_mb * MiB)
        self.client_id = uuid.uuid4().hex
        self.running: str | None = None   # prompt id in flight
        self.job_end: float | None = None  # monotonic end of the job in flight
        self.exchanges = Exchanges()

    def __repr__(self) -> str:
        return self.url

    @contextlib.contextmanager
    def job(self):
        """Bound everything done inside (uploads, queueing, waiting, downloads) by ``timeout`` seconds."""
        self.job_end = time.monotonic() + self.timeout
        try:
            yield self
        finally:
            self.job_end = None

    def _deadline(self, whole_job: bool) -> tuple[float, str]:
        """When the next exchange must be done, and what sets that time (for the message)."""
        now = time.monotonic()
        end = self.job_end if self.job_end is not None else now + self.timeout
        if whole_job or end < now + self.request_timeout:
            return end, f"--timeout {self.timeout:g} s"
        return now + self.request_timeout, f"{self.request_timeout:g} s"

    def request(self, path: str, *, data: bytes | None = None, headers: dict | None = None,
                sink: BinaryIO | None = None, what: str = "", whole_job: bool = False,
                deadline: float | None = None) -> bytes:
        """The body of a 200 answer (bounded, see :mod:`.exchange`); :class:`ServerDown` otherwise."""
        end, limit = (deadline, f"{deadline - time.monotonic():.0f} s") if deadline else self._deadline(whole_job)
        status, body = exchange(self.url, path, data=data, headers=headers, sink=sink, what=what, limit=limit,
                                deadline=end, stall=self.request_timeout,
                                max_bytes=self.max_download if sink is not None else self.max_response,
                                registry=None if deadline else self.exchanges)
        if status != 200:
            text = body.decode("utf-8", "replace")
            if status == 400 and path == "/prompt":
                raise JobFailed(f"{self.url} rejected the workflow: {_describe_rejection(text)}")
            raise ServerDown(f"{self.url}{path.split('?')[0]}: HTTP {status} {text[:120].strip()}")
        return body

    def get_json(self, path: str, body=None, *, deadline: float | None = None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        raw = self.request(path, data=data, headers=headers, deadline=deadline)
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise ServerDown(f"{self.url}{path.split('?')[0]}: the answer is not JSON; is this a ComfyUI server?") \
                from None

    def object_info(self, *, deadline: float | None = None) -> dict:
        """The served node schemas; :class:`ServerDown` when the URL is not a ComfyUI server."""
        try:
            info = self.get_json("/object_info", deadline=deadline)
        except ServerDown as exc:
            if "HTTP" in str(exc) or "not JSON" in str(exc):
                raise ServerDown(f"{self.url}: not a ComfyUI server (GET /object_info failed)") from None
            raise
        if not isinstance(info, dict) or not info:
            raise ServerDown(f"{self.url}: not a ComfyUI server (GET /object_info lists no node schemas)")
        for name, schema in info.items():
            problem = _schema_problem(schema)
            if problem:
                raise ServerDown(f"{self.url}: not a ComfyUI server (GET /object_info: the schema of {name[:60]!r} "
                                 f"is malformed: {problem})")
        return info

    def upload(self, path: str, *, name: str | None = None, subfolder: str = "tpsmm") -> str:
        """Upload a local file into the server's input folder as ``name`` (default :func:`upload_name`);
        the name to use in the prompt."""
        boundary = uuid.uuid4().hex
        with open(path, "rb") as f:
            content = f.read()
        name = name or upload_name(path)
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="subfolder"\r\n\r\n{subfolder}\r\n'.encode(),
                 f'--{boundary}\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\ntrue\r\n'.encode(),
                 (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                  "Content-Type: application/octet-stream\r\n\r\n").encode(), content, f"\r\n--{boundary}--\r\n".encode()]
        raw = self.request("/upload/image", data=b"".join(parts), whole_job=True,
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            reply = json.loads(raw)
            sub, got = reply.get("subfolder") or "", reply["name"]
            assert isinstance(sub, str) and isinstance(got, str) and got
        except (ValueError, KeyError, TypeError, AttributeError, AssertionError):
            raise ServerDown(f"{self.url}/upload/image: unexpected answer {raw[:120]!r}") from None
        return f"{sub}/{got}" if sub else got

    def queue(self, prompt: dict) -> str:
        reply = self.get_json("/prompt", {"prompt": prompt, "client_id": self.client_id})
        if not isinstance(reply, dict) or not isinstance(reply.get("prompt_id"), str):
            raise ServerDown(f"{self.url}/prompt: unexpected answer {str(reply)[:120]}")
        return reply["prompt_id"]

    def run(self, prompt: dict, *, progress: Callable[[int, int], None] | None = None) -> dict:
        """Queue ``prompt`` and wait for it; its ``/history`` entry (``outputs`` of the output nodes)."""
        try:
            ws = WebSocket(self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}",
                           timeout=min(WS_HANDSHAKE_SECONDS, self.request_timeout), max_frame=self.max_response)
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
        deadline, next_poll = self._deadline(whole_job=True)[0], 0.0
        while (left := deadline - time.monotonic()) > 0:
            if ws is not None:
                try:
                    message = ws.receive(timeout=min(1.0, left))
                except OSError:
                    ws, message = None, None   # a dead socket: let /history decide whether the server is gone
                data = (message or {}).get("data") or {}
                if message and isinstance(data, dict) and data.get("prompt_id") == prompt_id:
                    if message.get("type") == "progress" and progress:
                        progress(_int(data.get("value")), _int(data.get("max")))
                    if message.get("type") in ("execution_success", "execution_error", "execution_interrupted") or (
                            message.get("type") == "executing" and data.get("node") is None):
                        next_poll = 0.0
            else:
                time.sleep(min(0.5, left))
            if time.monotonic() >= next_poll:
                history = self.get_json(f"/history/{prompt_id}")
                entry = history.get(prompt_id) if isinstance(history, dict) else None
                if isinstance(entry, dict) and isinstance(entry.get("status"), dict) \
                        and entry["status"].get("completed") is not None:
                    status = entry["status"]
                    if status.get("status_str", "success") != "success":
                        raise JobFailed(_describe_failure(self.url, status))
                    return entry
                next_poll = time.monotonic() + (2.0 if ws is not None else 0.5)
        self.interrupt()
        raise JobFailed(f"{self.url}: the job did not finish within --timeout {self.timeout:g} s")

    def download(self, item: dict, sink: BinaryIO) -> None:
        """Stream one result file into ``sink`` (at most ``max_download`` bytes, within the job's time)."""
        query = urllib.parse.urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                        "type": item.get("type", "output")})
        self.request(f"/view?{query}", sink=sink, whole_job=True, what=f"{self.url}: result file {item['filename']!r}")

    def interrupt(self) -> None:
        """Stop this client's prompt on the server (best effort, a few seconds at most, never raises)."""
        deadline = time.monotonic() + INTERRUPT_SECONDS
        try:
            if self.running:
                self.request("/queue", data=json.dumps({"delete": [self.running]}).encode(), deadline=deadline,
                             headers={"Content-Type": "application/json"})
            self.request("/interrupt", data=b"{}", headers={"Content-Type": "application/json"}, deadline=deadline)
        except RenderError:
            pass


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _schema_problem(schema) -> str:
    """Why one ``/object_info`` entry is not a node schema ('' when it is one)."""
    if not isinstance(schema, dict):
        return f"a {type(schema).__name__}, not an object"
    sections = schema.get("input")
    if not isinstance(sections, dict):
        return "no 'input' object"
    for section in ("required", "optional", "hidden"):
        if not isinstance(sections.get(section, {}), dict):
            return f"input.{section} is not an object"
    if not isinstance(schema.get("output", []), (list, tuple)):
        return "'output' is not a list"
    if not isinstance(schema.get("output_node", False), bool):
        return "'output_node' is not true or false"
    return ""


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
