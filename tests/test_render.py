"""``tpsmm render --server`` against a real ComfyUI (tests/comfyui_harness.py): the pack loads, the bundled
workflows render, bad workflows are refused before anything is queued, results stay inside --out."""
from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import assets
import pytest
from comfyui_harness import ComfyProcess

from tpsmm.__main__ import main
from tpsmm.core.media.video import probe_video

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
ANIMATE = str(WORKFLOWS / "animate_basic_api.json")
BASE = ("--set", "1.image=face.png", "--set", "2.file=drive.mp4", "--set", "4.ckpt_name=tiny.safetensors")


@pytest.fixture(scope="module")
def servers(comfyui_dir, render_media, tmp_path_factory):
    """(ComfyUI with this pack and the tiny checkpoints, ComfyUI without this pack), started side by side."""
    base = tmp_path_factory.mktemp("comfy-base")
    procs = [ComfyProcess(comfyui_dir, base), ComfyProcess(comfyui_dir, tmp_path_factory.mktemp("bare"), with_pack=False)]
    try:
        for name in ("tiny.safetensors", "no_avd.safetensors"):
            shutil.copy(render_media / "models" / "tpsmm" / name, base / "models" / "tpsmm" / name)
        faces = assets.FACES.find()                                    # only the animate_photo test needs them
        if faces is not None:
            (base / "models" / "facedetection").mkdir(parents=True, exist_ok=True)
            shutil.copy(faces / "yunet_final.pth", base / "models" / "facedetection" / "yunet_final.pth")
        yield tuple(p.wait_ready() for p in procs)
    finally:
        for p in procs:
            p.stop()


@pytest.fixture
def render(servers, render_media, monkeypatch, capsys):
    """``render(*args) -> (exit code, stdout, stderr)``: ``tpsmm render --server URL`` in the media folder."""
    monkeypatch.chdir(render_media)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)

    def run(*args, server=None):
        code = main(["render", *args, "--server", server or servers[0].url, "--quiet"])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def history_size(url: str) -> int:
    with urllib.request.urlopen(url + "/history") as r:
        return len(json.load(r))


def test_pack_loads_without_import_failure(servers):
    with_pack, bare = servers
    assert not [ln for ln in with_pack.import_failures() if "tpsmm" in ln or "custom_nodes" in ln]
    with urllib.request.urlopen(with_pack.url + "/object_info") as r:
        info = json.load(r)
    assert {n for n in info if n.startswith("TPSMM_")} >= {"TPSMM_LoadCheckpoint", "TPSMM_Animate", "TPSMM_Generate"}
    assert info["TPSMM_Animate"]["python_module"] == "custom_nodes.tpsmm"
    # ComfyUI's start-up table "Import times for custom nodes": "   0.1 seconds: .../custom_nodes/tpsmm"
    (line,) = [ln for ln in with_pack.log.read_text().splitlines() if ln.rstrip().endswith("custom_nodes/tpsmm")]
    assert "IMPORT FAILED" not in line and float(line.split()[0]) < 1.0, line


def test_bundled_workflows_render(render, tmp_path):
    code, out, err = render(ANIMATE, *BASE, "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert out.split() == [str(tmp_path / "a" / "tpsmm" / "animate.mp4")]
    info = probe_video(out.split()[0])
    assert (info.width, info.height, info.frame_count, round(info.fps)) == (64, 64, 6, 10)
    # the UI-format twin, converted with the served schemas; --set by node title
    code, out, err = render(str(WORKFLOWS / "animate_basic.json"), *BASE, "--set", "Driving video.file=drive.mp4",
                            "--out", str(tmp_path / "b"))
    assert code == 0, err
    assert probe_video(out.split()[0]).frame_count == 6
    code, out, err = render(str(WORKFLOWS / "inspect_keypoints_api.json"), *BASE, "--out", str(tmp_path / "c"))
    assert code == 0, err
    assert sorted(Path(p).name for p in out.split()) == sorted(
        ["source_keypoints.png", "driving_keypoints.mp4", "flow.mp4", "occlusion.mp4", "generated.mp4"])
    assert not [f for f in os.listdir(tmp_path / "c" / "tpsmm") if f.startswith(".")]   # no temporary files left


def _workflow(tmp_path, change) -> str:
    data = json.loads(Path(ANIMATE).read_text())
    change(data)
    path = tmp_path / f"wf{len(list(tmp_path.glob('wf*.json')))}.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_bad_workflows_are_refused_before_queueing(render, servers, tmp_path, render_media):
    (tmp_path / "notes.png").write_text("not an image")
    bad = {
        "unknown node": (_workflow(tmp_path, lambda d: d.update({"9": {"class_type": "VHS_VideoCombine", "inputs": {}}})),
                         (), "node 9 (VHS_VideoCombine): node type not available on http://127.0.0.1:"),
        "no such input": (ANIMATE, ("--set", "5.speed=2"), "--set 5.speed: node 5 (TPSMM_Animate) has no input 'speed'"),
        "wrong type": (ANIMATE, ("--set", "5.strength=fast"), "node 5 (TPSMM_Animate): input 'strength': expected float"),
        "above max": (ANIMATE, ("--set", "5.strength=9"), "input 'strength': 9.0 is above the maximum 5.0"),
        "unknown model": (ANIMATE, ("--set", "4.ckpt_name=vox.safetensors"),
                          "input 'ckpt_name': 'vox.safetensors' is not one of the server's choices"),
        "missing input": (_workflow(tmp_path, lambda d: d["5"]["inputs"].pop("model")), (),
                          "node 5 (TPSMM_Animate): required input 'model' is missing"),
        "wrong link": (_workflow(tmp_path, lambda d: d["5"]["inputs"].update(source=["2", 0])), (),
                       "input 'source' expects IMAGE but is linked to a VIDEO output of node 2"),
        "no output": (_workflow(tmp_path, lambda d: d.pop("7")), (), "the workflow has no output node"),
        "not media": (ANIMATE, ("--set", f"1.image={tmp_path / 'notes.png'}"), "is not an image, a video or an audio file"),
        "no file": (ANIMATE, ("--set", "1.image=ghost.png"), "'ghost.png' is neither a file here"),
        "bad set": (ANIMATE, ("--set", "5.mode"), "expected NODE.input=VALUE"),
    }
    before = history_size(servers[0].url)
    for name, (workflow, extra, message) in bad.items():
        code, _, err = render(workflow, *BASE, *extra, "--out", str(tmp_path / "out"))
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, (name, err)
    code, _, err = render(ANIMATE, *BASE, "--out", str(tmp_path / "out"), server=servers[1].url)
    assert code == 1 and "node 4 (TPSMM_LoadCheckpoint): node type not available" in err
    assert "install tpsmm (this pack) on the server" in err
    assert history_size(servers[0].url) == before and not (tmp_path / "out").exists()


class NotComfy(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_servers_that_cannot_render(render, tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), NotComfy)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        code, _, err = render(ANIMATE, *BASE, "--out", str(tmp_path), server=f"http://127.0.0.1:{httpd.server_port}")
        assert code == 1 and "not a ComfyUI server" in err
    finally:
        httpd.shutdown()
        httpd.server_close()
    code, _, err = render(ANIMATE, *BASE, "--out", str(tmp_path), server=f"http://127.0.0.1:{httpd.server_port}")
    assert code == 1 and "cannot reach ComfyUI at http://127.0.0.1:" in err and "refused" in err
    assert os.listdir(tmp_path) == []


def test_preview_only_workflow_writes_nothing(render, tmp_path):
    def preview(d):
        d.pop("7")
        d["8"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}
    code, _, err = render(_workflow(tmp_path, preview), *BASE, "--out", str(tmp_path / "out"))
    assert code == 1 and "output nodes saved no file" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.*"))


def test_results_stay_inside_out_and_nothing_is_overwritten(render, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(outside, tmp_path / "out" / "tpsmm")             # a link out of --out where the results would go
    code, _, err = render(ANIMATE, *BASE, "--out", str(tmp_path / "out"))
    assert code == 1 and "links outside --out" in err and os.listdir(outside) == []
    os.remove(tmp_path / "out" / "tpsmm")
    (tmp_path / "out" / "tpsmm").mkdir()
    (tmp_path / "out" / "tpsmm" / "animate.mp4").write_bytes(b"mine")
    code, _, err = render(ANIMATE, *BASE, "--out", str(tmp_path / "out"))
    assert code == 1 and "tpsmm/animate.mp4 exists already; not overwriting it" in err   # before anything is sent
    assert (tmp_path / "out" / "tpsmm" / "animate.mp4").read_bytes() == b"mine"
    assert os.listdir(tmp_path / "out" / "tpsmm") == ["animate.mp4"]


def test_ui_workflows_convert_to_their_api_twins(servers):
    from tpsmm.render.schemas import ui_to_api

    with urllib.request.urlopen(servers[0].url + "/object_info") as r:
        schemas = json.load(r)
    for name in ("animate_basic", "inspect_keypoints", "animate_photo"):
        ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
        api = json.loads((WORKFLOWS / f"{name}_api.json").read_text())
        converted = ui_to_api(ui, schemas)
        assert {k: (v["class_type"], v["inputs"]) for k, v in converted.items()} == \
            {k: (v["class_type"], v["inputs"]) for k, v in api.items()}, name


def test_animate_photo_workflow_renders_the_full_photo(render, render_media, tmp_path, faces, photo):
    """The bundled animate_photo workflow in real ComfyUI: full photo + uncropped talking clip -> the animated photo
    (Find Face on both, crop, animate, paste back); the still photo outside the face box, motion inside."""
    import numpy as np
    import torch
    from test_face_track import in_canvas

    from tpsmm.core import find_face
    from tpsmm.core.media.image_io import save_image
    from tpsmm.core.media.video import VideoReader, VideoWriter

    image = photo("portrait.png")
    save_image(str(render_media / "photo.png"), image.numpy())
    with VideoReader(faces / "talking.mp4", max_frames=12) as reader:
        clip = torch.from_numpy(np.stack(list(reader)))
    with VideoWriter(str(render_media / "talking.mp4"), fps=25) as writer:
        writer.write(in_canvas(clip)[:, :480, :960].numpy())
    code, _, err = render(str(WORKFLOWS / "animate_photo_api.json"), "--set", "4.ckpt_name=tiny.safetensors",
                          "--out", str(tmp_path / "out"))
    assert code == 0, err
    videos = list((tmp_path / "out").rglob("*.mp4"))
    assert len(videos) == 1
    info = probe_video(videos[0])
    assert (info.width, info.height, info.frame_count) == (680, 676, 12)   # the photo's size, one frame per frame
    with VideoReader(videos[0]) as reader:
        first = torch.from_numpy(next(iter(reader))).float() / 255
    box = find_face(image, weights=faces / "yunet_final.pth").clip(680, 676)
    outside = torch.ones(676, 680, dtype=torch.bool)
    outside[box.y:box.y + box.h, box.x:box.x + box.w] = False
    assert (first - image).abs()[outside].mean() < 0.03 < (first - image).abs()[~outside].mean()

