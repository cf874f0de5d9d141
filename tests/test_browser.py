"""The bundled workflows in a real ComfyUI (tests/comfyui_harness.py) with its real web page.

* Without a browser: LoadVideo (a clip with sound) -> TPSMM Animate -> Save Video over the HTTP API writes an mp4 whose
  sound lasts as long as its frames (within 0.1 s) and which carries the prompt and workflow as ComfyUI's videos do.
* In headless Chromium driven by selenium (skipped, with the reason, where Chromium, its driver, selenium or the
  frontend package is missing): the three UI workflows open with every node known (no missing-node dialog), run from
  the page as the Run button runs them, and write their files; the animations keep the driving clip's sound.

One ComfyUI server serves the module. The checkpoint the workflows name (vox.safetensors) is a tiny random model.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import av
import numpy as np
import pytest
import assets
from comfyui_harness import ComfyProcess
from test_audio import durations

from tpsmm.core.media.audio import read_audio
from tpsmm.core.media.video import VideoReader, VideoWriter, probe_video

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
EXPECTED = {"animate_basic": ["tpsmm/animate"], "animate_photo": ["tpsmm/animate_photo"],
            "inspect_keypoints": ["tpsmm/source_keypoints", "tpsmm/driving_keypoints", "tpsmm/flow", "tpsmm/occlusion",
                                  "tpsmm/generated"]}
WITH_SOUND = ("animate_basic", "animate_photo")
CLIP_FRAMES = 10


def browser_missing() -> str | None:
    """Why no browser test can run here, or ``None``."""
    for tool in ("chromium", "chromedriver"):
        if not shutil.which(tool):
            return f"no {tool} on PATH (apt-get install chromium chromium-driver)"
    for module, package in (("selenium", "selenium"), ("comfyui_frontend_package", "comfyui-frontend-package==1.35.9")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed"
    return None


@pytest.fixture(scope="module")
def comfy(comfyui_dir, render_media, tmp_path_factory, faces):
    """ComfyUI with this pack, the web page (if installed), models and the inputs every bundled workflow names."""
    base = tmp_path_factory.mktemp("browser")
    proc = ComfyProcess(comfyui_dir, base, frontend=importlib.util.find_spec("comfyui_frontend_package") is not None)
    try:
        shutil.copy(render_media / "models" / "tpsmm" / "tiny.safetensors", base / "models" / "tpsmm" / "vox.safetensors")
        (base / "models" / "facedetection").mkdir(parents=True, exist_ok=True)
        shutil.copy(faces / "yunet_final.pth", base / "models" / "facedetection" / "yunet_final.pth")
        shutil.copy(render_media / "face.png", base / "input" / "source.png")
        shutil.copy(faces / "portrait.png", base / "input" / "photo.png")
        frames = np.stack(list(VideoReader(faces / "talking.mp4", max_frames=CLIP_FRAMES)))   # 0.4 s of the talking clip, with sound
        for name in ("driving.mp4", "talking.mp4"):
            with VideoWriter(base / "input" / name, fps=25, audio=read_audio(faces / "talking.mp4")) as w:
                w.write(frames)
        yield proc.wait_ready()
    finally:
        proc.stop()


def outputs(comfy) -> set[str]:
    return {str(p.relative_to(comfy.base / "output")) for p in (comfy.base / "output").rglob("*") if p.is_file()}


def history(comfy) -> dict:
    with urllib.request.urlopen(comfy.url + "/history") as r:
        return json.load(r)


def wait_for_runs(comfy, count: int, timeout: float = 240.0) -> dict:
    """Wait until ``count`` prompts have finished; returns the history."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = history(comfy)
        if len(runs) >= count and all(r.get("status", {}).get("completed") is not None for r in runs.values()):
            return runs
        assert comfy.proc.poll() is None, comfy.log.read_text()[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"ComfyUI did not finish within {timeout} s:\n{comfy.log.read_text()[-3000:]}")


def check_sound_and_metadata(path: Path, workflow: dict | None = None) -> dict:
    """The video has frames and sound of the same length (±0.1 s); returns its container tags."""
    info = probe_video(path)
    assert info.has_audio and info.frame_count == CLIP_FRAMES, (path, info)
    video_s, audio_s = durations(path)
    assert abs(audio_s - video_s) <= 0.1, (path, video_s, audio_s)
    with av.open(str(path)) as c:
        tags = dict(c.metadata)
    if workflow is not None:
        assert [n["type"] for n in json.loads(tags["workflow"])["nodes"]] == [n["type"] for n in workflow["nodes"]]
    return tags


def test_load_video_with_sound_animate_save_video_over_the_api(comfy):
    prompt = json.loads((WORKFLOWS / "animate_basic_api.json").read_text())
    workflow = json.loads((WORKFLOWS / "animate_basic.json").read_text())
    before, runs = outputs(comfy), len(history(comfy))
    body = {"prompt": prompt, "client_id": uuid.uuid4().hex, "extra_data": {"extra_pnginfo": {"workflow": workflow}}}
    request = urllib.request.Request(comfy.url + "/prompt", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as r:
        prompt_id = json.load(r)["prompt_id"]
    run = wait_for_runs(comfy, runs + 1)[prompt_id]
    assert run["status"]["status_str"] == "success", run["status"]
    (new,) = outputs(comfy) - before
    assert new.startswith("tpsmm/animate_") and new.endswith(".mp4")
    tags = check_sound_and_metadata(comfy.base / "output" / new, workflow)
    embedded = json.loads(tags["prompt"])                        # as Save Video embeds it (plus ComfyUI's is_changed)
    assert {k: (v["class_type"], v["inputs"]) for k, v in embedded.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}


def test_wiring_mistake_is_refused_when_queued_naming_the_node(comfy):
    prompt = json.loads((WORKFLOWS / "animate_basic_api.json").read_text())
    del prompt["5"]["inputs"]["driving_video"]                   # neither driving nor driving_video
    request = urllib.request.Request(comfy.url + "/prompt", data=json.dumps({"prompt": prompt}).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request)
    errors = json.load(info.value)["node_errors"]["5"]["errors"]
    assert any("TPSMM Animate: connect exactly one of 'driving' (IMAGE) or 'driving_video' (VIDEO)" in e["details"]
               for e in errors), errors


@pytest.fixture(scope="module")
def page(comfy):
    """Headless Chromium on ComfyUI's page, ready (``app.graph`` exists), the first-visit templates dialog off."""
    reason = browser_missing()
    if reason:
        assets.missing(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    request = urllib.request.Request(comfy.url + "/settings/Comfy.TutorialCompleted", data=b"true", method="POST")
    urllib.request.urlopen(request).read()
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1800,1100"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.set_script_timeout(60)
        driver.get(comfy.url)
        deadline = time.monotonic() + 90
        while not driver.execute_script("return !!(window.app && window.app.graph)"):
            assert time.monotonic() < deadline, "ComfyUI's page did not get ready in 90 s"
            time.sleep(0.5)
        yield driver
    finally:
        driver.quit()


def run_in_page(driver, script: str, *args):
    """Await a promise in the page; a rejection fails the test with its message."""
    error = driver.execute_async_script("const done = arguments[arguments.length - 1];"
                                        f"Promise.resolve().then(() => {script}).then(() => done(null), e => done(String(e)));",
                                        *args)
    assert error is None, error


@pytest.mark.parametrize("name", list(EXPECTED))
def test_ui_workflow_opens_and_runs_from_the_web_page(comfy, page, name):
    workflow = json.loads((WORKFLOWS / f"{name}.json").read_text())
    run_in_page(page, "app.loadGraphData(arguments[0])", workflow)
    unknown = page.execute_script("const g = app.graph; return (g.nodes || g._nodes).filter(n => n.has_errors || "
                                  "!LiteGraph.registered_node_types[n.type]).map(n => n.type)")
    dialogs = page.execute_script("return [...document.querySelectorAll('[role=dialog]')].map(d => d.innerText)")
    assert unknown == [] and not [d for d in dialogs if "missing" in d.lower()], (unknown, dialogs)
    before, runs = outputs(comfy), len(history(comfy))
    run_in_page(page, "app.queuePrompt(0, 1)")                   # what the Run button does
    finished = wait_for_runs(comfy, runs + 1)
    status = [r["status"] for r in finished.values() if r["status"].get("status_str") != "success"]
    assert status == [], status
    new = sorted(outputs(comfy) - before)
    for prefix in EXPECTED[name]:
        assert [f for f in new if f.startswith(prefix + "_") and f.endswith((".mp4", ".png"))], (prefix, new)
    if name in WITH_SOUND:
        (video,) = [f for f in new if f.endswith(".mp4")]
        check_sound_and_metadata(comfy.base / "output" / video, workflow)
