"""``tpsmm render``: the saved workflows executed headless on a tiny checkpoint, batch resume/failures, sharding."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model, tiny_model_config

from tpsmm.__main__ import main
from tpsmm.core.model.checkpoint import save_checkpoint
from tpsmm.core.media.image_io import save_image
from tpsmm.core import TPSMM
from tpsmm.core.media.video import VideoWriter, probe_video
from tpsmm.tpsmm_nodes.jobs import rank_from_env

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
ANIMATE = str(WORKFLOWS / "animate_basic_api.json")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A folder with models/ (tiny checkpoints), a source image and driving clips of 6 and 4 frames at 10 fps."""
    d = tmp_path_factory.mktemp("render")
    (d / "models").mkdir()
    save_checkpoint(make_tiny_model(), str(d / "models" / "tiny.safetensors"))
    torch.manual_seed(0)
    save_checkpoint(TPSMM(tiny_model_config(), with_avd=False).eval(), str(d / "models" / "no_avd.safetensors"))
    rng = np.random.default_rng(0)
    save_image(str(d / "face.png"), rng.random((80, 80, 3), dtype=np.float32))
    for name, n in (("drive_a.mp4", 6), ("drive_b.mp4", 4)):
        with VideoWriter(str(d / name), fps=10) as w:
            w.write(rng.random((n, 48, 48, 3), dtype=np.float32))
    return d


@pytest.fixture
def render(media, monkeypatch, capsys):
    """``render(*args) -> (exit code, stdout, stderr)`` running ``tpsmm render`` in the media folder."""
    monkeypatch.chdir(media)
    monkeypatch.delenv("TPSMM_MODELS_DIR", raising=False)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)

    def run(*args):
        code = main(["render", *args, "--models-dir", "models", "--quiet"])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


BASE = ("--set", "1.image=face.png", "--set", "4.ckpt_name=tiny.safetensors")


def test_animate_basic_renders_a_video(render, tmp_path):
    code, out, err = render(ANIMATE, *BASE, "--set", "2.file=drive_a.mp4", "--out", str(tmp_path))
    assert code == 0, err
    files = out.split()
    assert files == [str(tmp_path / "tpsmm" / "animate_00001_.mp4")]
    info = probe_video(files[0])
    assert (info.width, info.height, info.frame_count, round(info.fps)) == (64, 64, 6, 10)
    # the UI-format twin runs too, and a second run takes the next counter
    code, out, err = render(str(WORKFLOWS / "animate_basic.json"), *BASE, "--set", "Driving video.file=drive_b.mp4",
                            "--out", str(tmp_path))
    assert code == 0, err
    assert out.split() == [str(tmp_path / "tpsmm" / "animate_00002_.mp4")]
    assert probe_video(out.split()[0]).frame_count == 4
    assert not [f for f in os.listdir(tmp_path / "tpsmm") if f.startswith(".")]  # no temp or lock files left


def test_errors_name_the_node(render, tmp_path):
    code, _, err = render(ANIMATE, *BASE, "--set", "2.file=nope.mp4", "--out", str(tmp_path))
    assert code == 1 and "node 2 (LoadVideo 'Driving video'): video 'nope.mp4' not found" in err
    code, _, err = render(ANIMATE, *BASE, "--set", "2.file=drive_a.mp4", "--set", "5.mode=avd", "--set",
                          "4.ckpt_name=no_avd.safetensors", "--out", str(tmp_path))
    assert code == 1 and "node 5 (TPSMM_Animate): mode 'avd': this checkpoint has no AVD network" in err
    code, _, err = render(ANIMATE, "--set", "5.mode", "--out", str(tmp_path))
    assert code == 1 and "expected NODE.input=VALUE" in err
    assert not (tmp_path / "tpsmm").exists() or not os.listdir(tmp_path / "tpsmm")


def test_failed_run_removes_the_files_it_wrote(render, tmp_path):
    inspect = str(WORKFLOWS / "inspect_keypoints_api.json")
    args = (inspect, *BASE, "--set", "2.file=drive_b.mp4", "--out", str(tmp_path))
    code, out, err = render(*args)
    assert code == 0, err
    assert sorted(Path(p).name for p in out.split()) == sorted(
        f"{n}_00001_.{'png' if n == 'source_keypoints' else 'mp4'}"
        for n in ("source_keypoints", "driving_keypoints", "flow", "occlusion", "generated"))
    # the save nodes 8 and 11 run before the motion node 12 fails: their files must go again
    code, _, err = render(*args, "--set", "12.mode=avd", "--set", "4.ckpt_name=no_avd.safetensors")
    assert code == 1 and "node 12 (TPSMM_EstimateMotion): mode 'avd'" in err
    assert len(os.listdir(tmp_path / "tpsmm")) == 5


def write_jobs(path, rows):
    path.write_text("2.file,Save Video.filename_prefix\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return str(path)


def test_batch_resume_and_failures(render, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.csv", [("drive_a.mp4", "a/clip"), ("drive_b.mp4", "b/clip"),
                                               ("missing.mp4", "c/clip"), ("drive_b.mp4", "")])
    out = tmp_path / "out"
    code, _, err = render(ANIMATE, *BASE, "--batch", jobs, "--out", str(out))
    assert code == 1
    assert "row 3 (line 4) failed: node 2 (LoadVideo 'Driving video'): video 'missing.mp4' not found" in err
    assert "3 rendered, 0 skipped (already done), 1 failed" in err
    assert probe_video(str(out / "a" / "clip_00001_.mp4")).frame_count == 6
    assert probe_video(str(out / "b" / "clip_00001_.mp4")).frame_count == 4
    assert (out / "tpsmm" / "animate_00001_.mp4").is_file()  # empty cell: the workflow's own prefix
    assert not (out / "c").exists() or not os.listdir(out / "c")

    code, _, err = render(ANIMATE, *BASE, "--batch", jobs, "--out", str(out))   # rerun: only the failure again
    assert code == 1 and "0 rendered, 3 skipped (already done), 1 failed" in err
    assert sorted(os.listdir(out / "a")) == ["clip_00001_.mp4"]

    os.remove(out / "b" / "clip_00001_.mp4")                                      # a lost output is redone
    fixed = write_jobs(tmp_path / "jobs.csv", [("drive_a.mp4", "a/clip"), ("drive_b.mp4", "b/clip"),
                                                ("drive_a.mp4", "c/clip"), ("drive_b.mp4", "")])
    code, _, err = render(ANIMATE, *BASE, "--batch", fixed, "--out", str(out))
    assert code == 0, err
    assert "2 rendered, 2 skipped (already done), 0 failed" in err
    assert (out / "b" / "clip_00001_.mp4").is_file() and (out / "c" / "clip_00001_.mp4").is_file()


def test_batch_rejects_bad_columns_before_rendering(render, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("2.file,5.speed\ndrive_a.mp4,2\n")
    code, _, err = render(ANIMATE, *BASE, "--batch", str(bad), "--out", str(tmp_path / "out"))
    assert code == 1 and "has no input 'speed'" in err and not (tmp_path / "out").exists()
    bad.write_text("file\ndrive_a.mp4\n")
    code, _, err = render(ANIMATE, *BASE, "--batch", str(bad), "--out", str(tmp_path / "out"))
    assert code == 1 and "column 'file' is not a NODE.input target" in err


def test_torchrun_ranks_split_the_rows(render, tmp_path, monkeypatch):
    jobs = write_jobs(tmp_path / "jobs.csv", [("drive_b.mp4", f"r{i}/clip") for i in range(3)])
    out = tmp_path / "out"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    code, _, err = render(ANIMATE, *BASE, "--batch", jobs, "--out", str(out))
    assert code == 0 and "rank 1/2: 1 rendered" in err
    assert sorted(os.listdir(out)) == [".tpsmm-render", "r1"]
    monkeypatch.setenv("RANK", "0")
    code, _, err = render(ANIMATE, *BASE, "--batch", jobs, "--out", str(out))
    assert code == 0 and "rank 0/2: 2 rendered" in err
    assert sorted(os.listdir(out)) == [".tpsmm-render", "r0", "r1", "r2"]


def test_rank_from_env():
    assert rank_from_env({}) == (0, 1)
    assert rank_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (3, 4)
    assert rank_from_env({"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}) == (1, 2)
    with pytest.raises(RuntimeError, match="outside the world size"):
        rank_from_env({"RANK": "2", "WORLD_SIZE": "2"})
