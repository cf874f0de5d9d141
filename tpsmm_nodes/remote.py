"""Send a workflow to a running ComfyUI server: upload inputs, POST /prompt, poll /history, fetch via /view.

Only the standard library is used. LoadImage/LoadVideo values that name a file on this machine are
uploaded first (``POST /upload/image``, which ComfyUI accepts for videos too; identical files are
deduplicated by the server) and replaced by the name the server gives back.
"""
from __future__ import annotations

import copy
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from ..core.media.atomic import atomic_write
from .executor import RenderResult
from .graph import RenderError

__all__ = ["ComfyClient", "UPLOAD_INPUTS"]

UPLOAD_INPUTS = {"LoadImage": "image", "LoadVideo": "file"}


class ComfyClient:
    """Client of one ComfyUI server.

    Args:
        url: e.g. ``http://127.0.0.1:8188``.
        timeout: seconds to wait for one prompt to finish.
        poll: seconds between ``/history`` polls.
    """

    def __init__(self, url: str, *, timeout: float = 3600.0, poll: float = 0.5):
        self.url, self.timeout, self.poll = url.rstrip("/"), float(timeout), float(poll)
        self.client_id = str(uuid.uuid4())

    def _request(self, path: str, *, data: bytes | None = None, headers: dict | None = None) -> bytes:
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            if exc.code == 400 and path == "/prompt":
                raise RenderError(f"the server rejected the workflow: {_describe_rejection(body)}") from None
            raise RenderError(f"{self.url}{path.split('?')[0]}: HTTP {exc.code} {body[:200]}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise RenderError(f"cannot reach ComfyUI at {self.url}: {getattr(exc, 'reason', exc)}") from None

    def _json(self, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        return json.loads(self._request(path, data=data, headers=headers) or b"{}")

    def upload(self, path: str, *, subfolder: str = "tpsmm") -> str:
        """Upload a local file to the server's input folder; returns the name to use in the prompt."""
        boundary = uuid.uuid4().hex
        with open(path, "rb") as f:
            content = f.read()
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="subfolder"\r\n\r\n{subfolder}\r\n'.encode(),
                 (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                  f'filename="{os.path.basename(path)}"\r\nContent-Type: application/octet-stream\r\n\r\n').encode(),
                 content, f"\r\n--{boundary}--\r\n".encode()]
        reply = json.loads(self._request("/upload/image", data=b"".join(parts),
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}))
        return f"{reply['subfolder']}/{reply['name']}" if reply.get("subfolder") else reply["name"]

    def prepare(self, prompt: dict, input_dir: str) -> dict:
        """Copy of ``prompt`` with local input files uploaded and renamed."""
        out = copy.deepcopy(prompt)
        for node in out.values():
            name = UPLOAD_INPUTS.get(node.get("class_type"))
            value = node.get("inputs", {}).get(name)
            if isinstance(value, str):
                local = value if os.path.isabs(value) else os.path.join(input_dir, value)
                if os.path.isfile(local):
                    node["inputs"][name] = self.upload(local)
        return out

    def queue(self, prompt: dict) -> str:
        return self._json("/prompt", {"prompt": prompt, "client_id": self.client_id})["prompt_id"]

    def wait(self, prompt_id: str) -> dict:
        """Poll ``/history/<id>`` until the prompt finished; :class:`RenderError` naming the node on failure."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            history = self._json(f"/history/{prompt_id}")
            if prompt_id in history:
                entry = history[prompt_id]
                status = entry.get("status", {})
                if status.get("status_str", "success") != "success":
                    raise RenderError(_describe_failure(status))
                return entry
            time.sleep(self.poll)
        raise RenderError(f"{self.url}: prompt {prompt_id} did not finish within {self.timeout:g} s")

    def fetch(self, entry: dict, out_dir: str, result: RenderResult) -> None:
        """Download every saved output (type ``output``) into ``out_dir/<subfolder>/<filename>``."""
        for nid, ui in entry.get("outputs", {}).items():
            result.outputs[nid] = ui
            for item in (f for key in ("images", "gifs", "videos") for f in ui.get(key, [])):
                if item.get("type", "output") != "output":
                    continue
                query = urllib.parse.urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                                "type": "output"})
                dest = os.path.join(out_dir, item.get("subfolder", ""), item["filename"])
                if os.path.exists(dest):
                    raise RenderError(f"{dest}: exists already; not overwriting it with the server's output")
                os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
                data = self._request(f"/view?{query}")
                atomic_write(dest, lambda tmp: _write_bytes(tmp, data))
                result.files.append(dest)

    def run(self, prompt: dict, *, out_dir: str, input_dir: str = ".") -> RenderResult:
        result = RenderResult()
        try:
            self.fetch(self.wait(self.queue(self.prepare(prompt, input_dir))), out_dir, result)
        except BaseException:
            for path in result.files:
                if os.path.isfile(path):
                    os.remove(path)
            raise
        return result


def _describe_rejection(body: str) -> str:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body[:300]
    parts = []
    for nid, err in (data.get("node_errors") or {}).items():
        details = "; ".join(f"{e.get('message', '')}: {e.get('details', '')}".strip(": ")
                            for e in err.get("errors", []))
        parts.append(f"node {nid} ({err.get('class_type', '?')}): {details}")
    return " | ".join(parts) or (data.get("error") or {}).get("message", body[:300])


def _describe_failure(status: dict) -> str:
    for event, data in status.get("messages", []):
        if event == "execution_error":
            message = (data.get("exception_message") or "").strip()
            return (f"node {data.get('node_id')} ({data.get('node_type')}) failed on the server: "
                    f"{message.splitlines()[0] if message else data.get('exception_type', 'error')}")
        if event == "execution_interrupted":
            return f"node {data.get('node_id')} ({data.get('node_type')}): interrupted on the server"
    return f"the server reports status {status.get('status_str')!r}"


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
