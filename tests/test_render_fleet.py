"""``tpsmm render --batch`` on two real ComfyUI servers: shared rows, resume, failures, CSV errors, sharding,
two processes on one --out, and a server killed mid-batch (its row re-runs on the other)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from comfyui_harness import ComfyProcess

from tpsmm.__main__ import main
from tpsmm.core.media.video import probe_video

ANIMATE = str(Path(__file__).resolve().parents[1] / "workflows" / "animate_basic_api.json")
BASE = ("--set", "1.image=face.png", "--set", "4.ckpt_name=tiny.safetensors")


@pytest.fixture(scope="module")
def fleet(comfyui_dir, render_media, tmp_path_factory):
    procs = [ComfyProcess(comfyui_dir, tmp_path_factory.mktemp(f"fleet{i}")) for i in range(2)]
    try:
        for p in procs:
            for name in ("tiny.safetensors", "no_avd.safetensors"):
                shutil.copy(render_media / "models" / "tpsmm" / name, p.base / "models" / "tpsmm" / name)
        yield [p.wait_ready() for p in procs]
    finally:
        for p in procs:
            p.stop()


@pytest.fixture
def render(fleet, render_media, monkeypatch, capsys):
    monkeypatch.chdir(render_media)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)

    def run(*args, servers=None):
        urls = [a for p in (servers or fleet) for a in ("--server", p.url)]
        code = main(["render", ANIMATE, *BASE, *args, *urls, "--quiet"])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def history_size(url: str) -> int:
    with urllib.request.urlopen(url + "/history") as r:
        return len(json.load(r))


def jobs_csv(path: Path, rows) -> str:
    path.write_text("2.file,Save Video.filename_prefix,5.mode,4.ckpt_name\n" + "".join(",".join(r) + "\n" for r in rows))
    return str(path)


def test_batch_shared_by_two_servers_resumes_and_reports_failures(render, fleet, tmp_path):
    before = [history_size(p.url) for p in fleet]
    rows = [("drive.mp4", "a/clip", "", ""), ("long.mp4", "b/clip", "", ""),
            ("drive.mp4", "c/clip", "avd", "no_avd.safetensors"), ("drive.mp4", "d/clip", "standard", "")]
    batch, out = jobs_csv(tmp_path / "jobs.csv", rows), tmp_path / "out"
    code, stdout, err = render("--batch", batch, "--out", str(out))
    assert code == 1
    assert "3 rendered, 0 skipped (done earlier or by another process), 1 failed" in err
    assert "row 3 (line 4): node 5 (TPSMM_Animate) failed on http://127.0.0.1:" in err and "AVD" in err
    assert [probe_video(str(out / d / "clip.mp4")).frame_count for d in "abd"] == [6, 40, 6]
    assert not (out / "c").exists()
    ran = [history_size(p.url) - b for p, b in zip(fleet, before)]
    assert sum(ran) == 4 and min(ran) >= 1                        # both servers took rows
    code, _, err = render("--batch", batch, "--out", str(out))    # rerun: only the failed row again
    assert code == 1 and "0 rendered, 3 skipped (done earlier or by another process), 1 failed" in err
    assert sum(history_size(p.url) for p in fleet) == sum(before) + 5


def test_rows_without_an_output_name_get_folders_of_their_own(render, tmp_path):
    """A two-row CSV over a workflow whose Save Video has a fixed prefix: two videos, and the summary says whose."""
    (tmp_path / "jobs.csv").write_text("2.file\ndrive.mp4\nlong.mp4\n")
    code, _, err = render("--batch", str(tmp_path / "jobs.csv"), "--out", str(tmp_path / "out"))
    assert code == 0, err
    videos = sorted(str(f.relative_to(tmp_path / "out")) for f in (tmp_path / "out").rglob("*.mp4"))
    assert videos == ["row-1/tpsmm/animate.mp4", "row-2/tpsmm/animate.mp4"]
    assert [probe_video(str(tmp_path / "out" / v)).frame_count for v in videos] == [6, 40]
    assert f"row 2 (line 3) wrote {tmp_path / 'out' / 'row-2' / 'tpsmm' / 'animate.mp4'}" in err


def test_bad_batch_files_are_refused_before_queueing(render, fleet, tmp_path):
    before = sum(history_size(p.url) for p in fleet)
    cases = {"2.file,5.speed\ndrive.mp4,2\n": "line 1: column '5.speed': node 5 (TPSMM_Animate) has no input 'speed'",
             "2.file,2.file\ndrive.mp4,drive.mp4\n": "line 1: column '2.file' appears twice",
             "file\ndrive.mp4\n": "line 1: column 'file': not a NODE.input target",
             "2.file,5.mode\ndrive.mp4,relative\ndrive.mp4\n": "line 3: 1 cells, but the header has 2 columns",
             '2.file,5.mode\n"drive.mp4,relative\n': "malformed CSV",
             "2.file,5.strength\ndrive.mp4,9\n": "jobs.csv line 2: node 5 (TPSMM_Animate): input 'strength': 9.0 is above",
             "2.file\nghost.mp4\n": "jobs.csv line 2: node 2 (LoadVideo 'Driving video') input 'file': 'ghost.mp4'"}
    for text, message in cases.items():
        (tmp_path / "jobs.csv").write_text(text)
        code, _, err = render("--batch", str(tmp_path / "jobs.csv"), "--out", str(tmp_path / "out"))
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, (text, err)
    assert sum(history_size(p.url) for p in fleet) == before and not (tmp_path / "out").exists()


def test_torchrun_ranks_split_the_rows(render, tmp_path, monkeypatch):
    batch = jobs_csv(tmp_path / "jobs.csv", [("drive.mp4", f"r{i}/clip", "", "") for i in range(3)])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    code, _, err = render("--batch", batch, "--out", str(tmp_path / "out"))
    assert code == 0 and "rank 1/2: 1 rendered" in err
    assert sorted(os.listdir(tmp_path / "out")) == [".tpsmm-jobs", "r1"]


def _spawn(args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tpsmm", "render", ANIMATE, *BASE, "--quiet", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_on_one_out_render_each_row_once(fleet, render_media, tmp_path):
    before = sum(history_size(p.url) for p in fleet)
    batch = jobs_csv(tmp_path / "jobs.csv", [("drive.mp4", f"r{i}/clip", "", "") for i in range(4)])
    procs = [_spawn(["--batch", batch, "--out", str(tmp_path / "out"), "--server", p.url], render_media) for p in fleet]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert sum(history_size(p.url) for p in fleet) == before + 4     # no row rendered twice
    assert sorted(str(f.relative_to(tmp_path / "out")) for f in (tmp_path / "out").rglob("*.mp4")) == \
        [f"r{i}/clip.mp4" for i in range(4)]
    assert not list((tmp_path / "out" / ".tpsmm-jobs").glob("*.claim"))


def _wait_running(url: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/queue") as r:
            if json.load(r)["queue_running"]:
                return
        time.sleep(0.2)
    raise AssertionError(f"{url}: nothing started running")


def test_ctrl_c_interrupts_every_server_and_leaves_nothing(fleet, render_media, tmp_path):
    batch = jobs_csv(tmp_path / "jobs.csv", [("long.mp4", f"i{i}/clip", "", "") for i in range(4)])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    proc = _spawn(["--batch", batch, "--out", str(tmp_path / "out"), "--server", fleet[0].url,
                   "--server", fleet[1].url], render_media)
    _wait_running(fleet[0].url)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "tpsmm: interrupted" in err
    for p in fleet:                                             # the servers stopped working on it
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(p.url + "/queue") as r:
                queue = json.load(r)
            if not queue["queue_running"] and not queue["queue_pending"]:
                break
            time.sleep(0.2)
        assert not queue["queue_running"] and not queue["queue_pending"], queue
    left = {str(f.relative_to(tmp_path / "out")) for f in (tmp_path / "out").rglob("*") if f.is_file()}
    records = [f for f in left if f.endswith(".done")]                        # rows finished before Ctrl-C
    finished = {p for r in records for p in json.loads((tmp_path / "out" / r).read_text())["files"]}
    assert left - set(records) - finished == {"mine.txt"}                     # no partial or temporary file
    assert (tmp_path / "out" / "mine.txt").read_text() == "keep"


def test_killed_server_has_its_row_rerun_on_the_other(fleet, render_media, tmp_path):
    """Runs last in this module: it kills one of the two servers."""
    batch = jobs_csv(tmp_path / "jobs.csv", [("long.mp4", f"k{i}/clip", "", "") for i in range(4)])
    proc = _spawn(["--batch", batch, "--out", str(tmp_path / "out"), "--server", fleet[0].url,
                   "--server", fleet[1].url], render_media)
    _wait_running(fleet[0].url)
    fleet[0].kill()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "running it on another server" in err and "4 rendered, 0 skipped" in err
    files = sorted(str(f.relative_to(tmp_path / "out")) for f in (tmp_path / "out").rglob("*.mp4"))
    assert files == [f"k{i}/clip.mp4" for i in range(4)]
    assert all(probe_video(str(tmp_path / "out" / f)).frame_count == 40 for f in files)
