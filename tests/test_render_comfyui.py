"""``tpsmm render --comfyui DIR``: ComfyUI started here headless renders a workflow mixing TPSMM nodes with
ComfyUI core nodes, and is stopped again (no process, no temporary folder left)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tpsmm.__main__ import main
from tpsmm.core.media.video import probe_video

ANIMATE = Path(__file__).resolve().parents[1] / "workflows" / "animate_basic_api.json"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def test_mixed_workflow_renders_through_comfyui_started_here(comfyui_dir, render_media, tmp_path, monkeypatch,
                                                             capsys):
    flow = json.loads(ANIMATE.read_text())
    flow["8"] = {"class_type": "ImageScaleBy", "inputs": {"image": ["5", 0], "upscale_method": "bilinear",  # IMAGE out
                                                          "scale_by": 2.0}}
    flow["9"] = {"class_type": "ImageBlur", "inputs": {"image": ["8", 0], "blur_radius": 1, "sigma": 1.0}}
    flow["6"] = {"class_type": "CreateVideo", "inputs": {"images": ["9", 0], "fps": 10.0}}
    flow["7"]["inputs"]["video"] = ["6", 0]
    flow["10"] = {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "frames/f"}}
    (tmp_path / "mixed.json").write_text(json.dumps(flow))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(render_media)
    code = main(["render", str(tmp_path / "mixed.json"), "--comfyui", str(comfyui_dir), "--models-dir", "models",
                 "--set", "1.image=face.png", "--set", "2.file=drive.mp4", "--set", "4.ckpt_name=tiny.safetensors",
                 "--out", str(tmp_path / "out"), "--quiet", "--cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    video = probe_video(str(tmp_path / "out" / "tpsmm" / "animate.mp4"))
    assert (video.width, video.height, video.frame_count) == (128, 128, 6)       # scaled by ComfyUI's own node
    frames = sorted(p.name for p in (tmp_path / "out" / "frames").iterdir())
    assert frames == [f"f_{i:05d}.png" for i in range(6)]
    assert len(out.split()) == 7
    assert os.listdir(scratch) == [] and not _processes_mentioning(str(scratch))  # servers stopped, folders gone


def test_comfyui_folder_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TPSMM_COMFYUI", raising=False)
    code = main(["render", str(ANIMATE), "--comfyui", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 1 and "not a ComfyUI folder (no main.py in it)" in capsys.readouterr().err
    code = main(["render", str(ANIMATE), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 1 and "no ComfyUI to render on: pass --server URL" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
