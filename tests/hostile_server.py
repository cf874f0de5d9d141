"""A small fake ComfyUI on loopback for the hostile ``tpsmm render`` tests, honest or malicious per path.

It serves two node types (``LoadImage``, ``SaveImage``), takes uploads into memory, and "renders" a
prompt by saving the uploaded image it names, so a test can see which input each row really used.
``tricks`` turn a path hostile: ``drip`` (one byte every ``drip_every`` seconds), ``huge`` (``size``
bytes of zeros), ``body`` (these bytes instead), ``subfolder``/``filename`` (names in ``/history``).
Everything is bounded: 127.0.0.1 only, loops stop after ``lifetime`` seconds, and the server shuts
itself down then.
"""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORKFLOW = {"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
SCHEMAS = {
    "LoadImage": {"input": {"required": {"image": [["in.png"], {"image_upload": True}]}},
                  "input_order": {"required": ["image"]}, "output": ["IMAGE", "MASK"], "output_node": False},
    "SaveImage": {"input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "x"}]}},
                  "input_order": {"required": ["images", "filename_prefix"]}, "output": [], "output_node": True},
}


class HostileComfy:
    """``with HostileComfy(tricks) as server:`` -> ``server.url``; ``server.uploads``, ``server.prompts`` record."""

    def __init__(self, tricks: dict | None = None, *, drip_every: float = 1.0, lifetime: float = 60.0):
        self.tricks, self.drip_every, self.lifetime = tricks or {}, drip_every, lifetime
        self.uploads: dict[str, bytes] = {}
        self.prompts: list[dict] = []
        self.results: dict[str, bytes] = {}   # saved file name -> content
        self.history: dict[str, dict] = {}    # prompt id -> its saved file
        self.started = threading.Event()   # set when a hostile answer begins
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.end = time.monotonic() + lifetime

    def __enter__(self) -> "HostileComfy":
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self._timer = threading.Timer(self.lifetime, self.httpd.shutdown)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        self.end = 0.0
        self.httpd.shutdown()
        self.httpd.server_close()

    def trick(self, path: str):
        return next((v for k, v in self.tricks.items() if path.startswith(k)), None)

    def answer(self, path: str, query: dict, body: bytes) -> bytes:
        """The honest answer to one request."""
        if path == "/object_info":
            return json.dumps(SCHEMAS).encode()
        if path == "/upload/image":
            name = re.search(rb'filename="([^"]+)"', body).group(1).decode()
            content = body.split(b"\r\n\r\n")[-1].rsplit(b"\r\n--", 1)[0]
            self.uploads[f"tpsmm/{name}"] = content
            return json.dumps({"name": name, "subfolder": "tpsmm", "type": "input"}).encode()
        if path == "/prompt":
            prompt, pid = json.loads(body)["prompt"], uuid.uuid4().hex
            self.prompts.append(prompt)
            sub, _, prefix = prompt["2"]["inputs"]["filename_prefix"].rpartition("/")
            name = f"{prefix}_{len(self.prompts):05d}_.png"
            self.results[name] = self.uploads.get(prompt["1"]["inputs"]["image"], b"")
            self.history[pid] = {"filename": self.tricks.get("filename", name),
                                 "subfolder": self.tricks.get("subfolder", sub), "type": "output"}
            return json.dumps({"prompt_id": pid}).encode()
        if path.startswith("/history/"):
            pid = path.rsplit("/", 1)[1]
            return json.dumps({pid: {"status": {"completed": True, "status_str": "success"},
                                     "outputs": {"2": {"images": [self.history[pid]]}}}}).encode()
        if path == "/view":
            return self.results.get(query.get("filename", ""), b"")
        return b"{}"


def _handler(server: HostileComfy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args) -> None:
            pass

        def _serve(self, body: bytes = b"") -> None:
            path, _, query = self.path.partition("?")
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            trick = server.trick(path)
            if path == "/ws" and trick is None:
                return self.send_error(404)
            if trick is None or not isinstance(trick, dict):
                data = server.answer(path, params, body)
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                return self.wfile.write(data)
            server.started.set()
            if trick.get("mode") == "drip":
                return self._drip(trick.get("body", b'{"never": "complete"}' * 1000))
            if trick.get("mode") == "huge":
                return self._huge(trick["size"], trick.get("length", True))
            data = trick["body"]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _drip(self, data: bytes) -> None:
            for byte in b"HTTP/1.0 200 OK\r\n\r\n" + data:
                if time.monotonic() > server.end:
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(server.drip_every)

        def _huge(self, size: int, length: bool) -> None:
            self.send_response(200)
            if length:
                self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk, sent = b"\0" * (1 << 20), 0
            while sent < size and time.monotonic() < server.end:
                self.wfile.write(chunk[:size - sent])
                sent += len(chunk)

        def do_GET(self) -> None:
            try:
                self._serve()
            except OSError:
                pass   # the client hung up: what a hostile server gets

        def do_POST(self) -> None:
            try:
                self._serve(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            except OSError:
                pass
    return Handler
