"""``tpsmm animate --batch JOBS.csv``: one animation per row, checked up front, resumable, shared output folder."""
from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import make_tiny_model
from test_animate_cli import frames, write_clip

import tpsmm.__main__ as entry
from tpsmm.core.cli.batch import BatchError, rank_from_env, read_rows
from tpsmm.core.cli.claims import JobStore
from tpsmm.core.media.image_io import save_image
from tpsmm.core.media.video import probe_video
from tpsmm.core.model.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("animate-batch")
    save_checkpoint(make_tiny_model(), str(d / "tiny.safetensors"))
    save_image(str(d / "photo.png"), frames(1, 80, 100)[0].astype(np.float32) / 255)
    write_clip(d / "a.mp4", frames(4))
    write_clip(d / "b.mp4", frames(3))
    (d / "old.mp4").write_bytes(b"an earlier result")
    return d


@pytest.fixture
def animate(media, monkeypatch, capsys):
    """``animate(csv_text, *args)``: ``tpsmm animate --batch jobs.csv`` in the media folder (in this process)."""
    monkeypatch.chdir(media)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)

    def run(csv_text: str, *extra):
        (media / "jobs.csv").write_text(csv_text)
        code = entry.main(["animate", "--checkpoint", "tiny.safetensors", "--batch", "jobs.csv", "--quiet", *extra])
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return run


def test_rows_render_resume_and_report_failures(media, animate):
    text = ("source,driving,out,mode,side-by-side\nphoto.png,a.mp4,out/a.mp4,,\nphoto.png,b.mp4,out/b.mp4,standard,true\n"
            "photo.png,missing.mp4,out/c.mp4,,\n")
    r = animate(text)
    assert r.returncode == 1 and "2 rendered, 0 skipped" in r.stderr and "1 failed" in r.stderr
    assert "row 3 (line 4): --driving missing.mp4: file not found" in r.stderr
    assert f"row 2 (line 3) wrote {media / 'out' / 'b.mp4'}" in r.stderr           # which row wrote which file
    assert probe_video(str(media / "out" / "a.mp4")).frame_count == 4
    b = probe_video(str(media / "out" / "b.mp4"))
    assert b.frame_count == 3 and b.width > 2 * b.height           # side by side: three panels
    assert not (media / "out" / "c.mp4").exists()
    before = (media / "out" / "a.mp4").read_bytes()
    r = animate(text)                                          # rerun: only the failed row again
    assert r.returncode == 1 and "0 rendered, 2 skipped" in r.stderr
    assert (media / "out" / "a.mp4").read_bytes() == before


@pytest.mark.parametrize("text, message", [
    ("source,driving,out,speed\nphoto.png,a.mp4,x.mp4,2\n", "jobs.csv line 1: column 'speed': not a tpsmm animate option"),
    ("source,driving,out,mode\nphoto.png,a.mp4,x.mp4,sideways\n", "jobs.csv line 2: column 'mode': 'sideways' is not one"),
    ("source,driving,out\nphoto.png,a.mp4\n", "jobs.csv line 2: 2 cells, but the header has 3 columns"),
    ("source,source,out\nphoto.png,a.mp4,x.mp4\n", "jobs.csv line 1: column 'source' appears twice"),
    ("source,driving,out\nphoto.png,a.mp4,x.mp4\nphoto.png,b.mp4,x.mp4\n", "line 3: out x.mp4 is also the output of line 2"),
    ("source,driving\nphoto.png,a.mp4\n", "jobs.csv line 2: no out"),
    ('source,driving,out\n"photo.png,a.mp4,x.mp4\n', "malformed CSV"),
    ("source,driving,out\nphoto.png,a.mp4,y.mp4\nphoto.png,y.mp4,x.mp4\n",   # an output used as an input
     "jobs.csv line 3: driving y.mp4 is written by line 2; a batch cannot read what it writes"),
    ("source,driving,out,save-flow\nphoto.png,a.mp4,y.mp4,\nphoto.png,b.mp4,x.mp4,y.mp4\n",   # side output vs out
     "jobs.csv line 3: save-flow y.mp4 is also the output of line 2"),
    ("source,driving,out\nphoto.png,a.mp4,x.mp4\nphoto.png,b.mp4,old.mp4\n",   # the result exists already
     "jobs.csv line 3: out old.mp4 exists already; not overwriting it (move it away, or pass --overwrite)"),
])
def test_bad_rows_are_refused_before_any_job(media, animate, text, message):
    r = animate(text)
    assert r.returncode == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (media / "x.mp4").exists()


def test_claims_keep_other_processes_off_a_job(tmp_path):
    a, b = JobStore(str(tmp_path)), JobStore(str(tmp_path))
    assert a.claim("k") and not b.claim("k")                           # held by a live process
    (tmp_path / "f.mp4").write_bytes(b"x")
    a.mark_done("k", [str(tmp_path / "f.mp4")])
    assert b.is_done("k") and not list((tmp_path / ".tpsmm-jobs").glob("*.claim"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    claim = tmp_path / ".tpsmm-jobs" / "j.claim"
    claim.write_text('{"host": "%s", "pid": %s, "time": 0}' % (os.uname().nodename, dead.stdout.strip()))
    assert b.claim("j")                                                # a killed process's claim expires
    a.close(), b.close()


def test_read_rows_and_ranks(tmp_path):
    (tmp_path / "j.csv").write_text("a,b\n1,2\n\n3,\n")
    rows = read_rows(str(tmp_path / "j.csv"))
    assert [(r.row, r.line, r.values) for r in rows] == [(1, 2, {"a": "1", "b": "2"}), (2, 4, {"a": "3"})]
    with pytest.raises(BatchError, match="batch file not found"):
        read_rows(str(tmp_path / "nope.csv"))
    assert rank_from_env({}) == (0, 1) and rank_from_env({"RANK": "3", "WORLD_SIZE": "4"}) == (3, 4)
    with pytest.raises(BatchError, match="outside the world size"):
        rank_from_env({"RANK": "2", "WORLD_SIZE": "2"})
