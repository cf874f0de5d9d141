"""``tpsmm render --server``: against a small stand-in of ComfyUI's HTTP API on 127.0.0.1."""
from __future__ import annotations

import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tpsmm.__main__ import main

ANIMATE = str(Path(__file__).resolve().parents[1] / "workflows" / "animate_basic_api.json")


class FakeComfy(BaseHTTPRequestHandler):
    """Answers like ComfyUI: /upload/image, /prompt (400 for an unknown checkpoint), /history (empty until the
    second poll; an execution_error for the video 'boom.mp4'), /view."""

    state: dict

    def log_message(self, *args):
        pass

    def reply(self, body, status=200, raw=False):
        data = body if raw else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/upload/image":
            name = re.search(rb'name="image"; filename="([^"]+)"', body).group(1).decode()
            sub = re.search(rb'name="subfolder"\r\n\r\n([^\r]*)\r\n', body).group(1).decode()
            self.state["uploads"].append((sub, name, body.count(b"PNG") > 0 or b"ftyp" in body))
            return self.reply({"name": name, "subfolder": sub, "type": "input"})
        prompt = json.loads(body)["prompt"]
        if prompt["4"]["inputs"]["ckpt_name"] != "vox.safetensors":
            return self.reply({"error": {"type": "prompt_outputs_failed_validation", "message": "failed"},
                               "node_errors": {"4": {"class_type": "TPSMM_LoadCheckpoint", "errors": [
                                   {"message": "Value not in list", "details": "ckpt_name: 'x' not in []"}]}}}, 400)
        pid = f"p{len(self.state['prompts'])}"
        self.state["prompts"].append(prompt)
        self.state["polls"][pid] = 0
        return self.reply({"prompt_id": pid, "number": 0, "node_errors": {}})

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path.startswith("/history/"):
            pid = url.path.rsplit("/", 1)[1]
            self.state["polls"][pid] += 1
            if self.state["polls"][pid] < 2:
                return self.reply({})
            prompt = self.state["prompts"][int(pid[1:])]
            if prompt["2"]["inputs"]["file"].endswith("boom.mp4"):
                status = {"status_str": "error", "completed": False, "messages": [
                    ["execution_start", {}], ["execution_error", {"node_id": "5", "node_type": "TPSMM_Animate",
                                                                  "exception_message": "driving: broken\nmore"}]]}
                return self.reply({pid: {"prompt": [], "outputs": {}, "status": status}})
            prefix = prompt["7"]["inputs"]["filename_prefix"]
            sub, name = prefix.rsplit("/", 1)
            outputs = {"7": {"images": [{"filename": f"{name}_{pid}_.mp4", "subfolder": sub, "type": "output"}],
                             "animated": [True]},
                       "9": {"images": [{"filename": "preview.png", "subfolder": "", "type": "temp"}]}}
            return self.reply({pid: {"prompt": [], "outputs": outputs, "status": {"status_str": "success"}}})
        if url.path == "/view":
            q = urllib.parse.parse_qs(url.query)
            return self.reply(f"video {q['subfolder'][0]}/{q['filename'][0]}".encode(), raw=True)
        return self.reply({}, 404)


@pytest.fixture
def server():
    handler = type("Handler", (FakeComfy,), {"state": {"uploads": [], "prompts": [], "polls": {}}})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def render(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "face.png").write_bytes(b"\x89PNG fake image")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 fake video")

    def run(*args):
        code = main(["render", ANIMATE, "--quiet", *args])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def test_server_run_uploads_inputs_and_fetches_outputs(server, render, tmp_path):
    url, state = server
    code, out, err = render("--server", url, "--set", "1.image=face.png", "--set", "2.file=clip.mp4",
                            "--set", "7.filename_prefix=tpsmm/x", "--out", "out")
    assert code == 0, err
    assert state["uploads"] == [("tpsmm", "face.png", True), ("tpsmm", "clip.mp4", True)]
    sent = state["prompts"][0]
    assert sent["1"]["inputs"]["image"] == "tpsmm/face.png" and sent["2"]["inputs"]["file"] == "tpsmm/clip.mp4"
    assert sent["5"]["inputs"]["model"] == ["4", 0] and sent["7"]["inputs"]["filename_prefix"] == "tpsmm/x"
    saved = tmp_path / "out" / "tpsmm" / "x_p0_.mp4"
    assert out.split() == [str(Path("out") / "tpsmm" / "x_p0_.mp4")]
    assert saved.read_bytes() == b"video tpsmm/x_p0_.mp4"  # temp previews are not fetched


def test_server_errors_are_reported_with_the_node(server, render):
    url, state = server
    code, _, err = render("--server", url, "--set", "4.ckpt_name=x", "--out", "out")
    assert code == 1
    assert "the server rejected the workflow: node 4 (TPSMM_LoadCheckpoint): Value not in list: ckpt_name" in err
    code, _, err = render("--server", url, "--set", "2.file=boom.mp4", "--out", "out")
    assert code == 1 and "node 5 (TPSMM_Animate) failed on the server: driving: broken" in err
    assert state["uploads"] == []  # names that are not local files are sent as they are
    code, _, err = render("--server", "http://127.0.0.1:9", "--out", "out")
    assert code == 1 and "cannot reach ComfyUI at http://127.0.0.1:9" in err


def test_server_batch_resumes(server, render, tmp_path):
    url, state = server
    (tmp_path / "jobs.csv").write_text("2.file,7.filename_prefix\nclip.mp4,a/v\nboom.mp4,b/v\nlater.mp4,c/v\n")
    code, _, err = render("--server", url, "--batch", "jobs.csv", "--out", "out")
    assert code == 1 and "2 rendered, 0 skipped (already done), 1 failed" in err
    assert "row 2 (line 3) failed: node 5 (TPSMM_Animate) failed on the server" in err
    assert (tmp_path / "out" / "a" / "v_p0_.mp4").is_file() and (tmp_path / "out" / "c").is_dir()
    code, _, err = render("--server", url, "--batch", "jobs.csv", "--out", "out")
    assert code == 1 and "0 rendered, 2 skipped (already done), 1 failed" in err
    assert len(state["prompts"]) == 4  # only the failing row was sent again
