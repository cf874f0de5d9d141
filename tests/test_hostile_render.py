"""``tpsmm render`` against hostile servers (tests/hostile_server.py on loopback): deadlines, size caps, checked
downloads, content-named uploads, names that may not reach the tool's own folders, and Ctrl-C/SIGTERM."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hostile_server import WORKFLOW, HostileComfy
from PIL import Image

from tpsmm.__main__ import main

HANG = 40   # s: not a speed check - a hostile server keeps answering for 60 s, so a client still waiting has hung


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "wf.json").write_text(json.dumps(WORKFLOW))
    for sub, colour in (("ux", (255, 0, 0)), ("uy", (0, 0, 255))):
        (tmp_path / sub).mkdir()
        Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(tmp_path / sub / "source.png")
    return tmp_path


def render(capsys, *args):
    start = time.monotonic()
    code = main(["render", "wf.json", "--quiet", *args])
    out = capsys.readouterr()
    return code, out.out, out.err, time.monotonic() - start


def leftovers(folder) -> list[str]:
    return [str(p) for p in folder.rglob("*") if ".partial" in p.name]


@pytest.mark.parametrize("path", ["/object_info", "/history", "/prompt", "/upload/image"])
def test_a_dripping_server_gives_up_within_the_timeout(files, capsys, path):
    with HostileComfy({path: {"mode": "drip"}}) as server:
        code, _, err, took = render(capsys, "--set", "1.image=ux/source.png", "--server", server.url, "--timeout", "3",
                                    "--out", "out")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "3 s (a server that answers this slowly is treated as down)" in err and "no complete answer within" in err
    assert took < HANG and not leftovers(files)


def test_a_job_that_never_finishes_is_given_up_after_the_timeout(files, capsys):
    with HostileComfy({"/history": {"body": b"{}"}}) as server:     # queued, never reported done
        code, _, err, took = render(capsys, "--set", "1.image=ux/source.png", "--server", server.url, "--timeout", "3",
                                    "--out", "out")
    assert code == 1 and "the job did not finish within --timeout 3 s" in err and len(err.strip().splitlines()) == 1
    assert took < HANG


def test_a_dripping_websocket_leaves_progress_to_history_polling(files, capsys):
    with HostileComfy({"/ws": {"mode": "drip"}}) as server:
        code, _, err, took = render(capsys, "--set", "1.image=ux/source.png", "--server", server.url, "--timeout", "12",
                                    "--out", "out")
    assert code == 0 and (files / "out" / "x.png").is_file(), err
    assert took < HANG


def test_a_dripping_download_is_rerun_on_another_server_and_the_server_dropped(files, capsys):
    with HostileComfy({"/view": {"mode": "drip"}}) as slow, HostileComfy() as good:
        rows = "1.image\nux/source.png\nuy/source.png\nux/source.png\n"
        (files / "jobs.csv").write_text(rows)
        code, _, err, took = render(capsys, "--batch", "jobs.csv", "--server", slow.url, "--server", good.url,
                                    "--timeout", "3", "--out", "out")
    assert code == 0, err
    assert f"{slow.url} failed on row" in err and f"dropping {slow.url}" in err and "3 rendered" in err
    assert len(good.prompts) == 3 and len(slow.prompts) <= 1
    assert took < HANG and not leftovers(files)


def test_rows_with_files_of_one_name_each_render_their_own(files, capsys):
    """ux/source.png, uy/source.png, ux/source.png: three rows, each with its own image, no prompt prefix set."""
    (files / "jobs.csv").write_text("1.image\nux/source.png\nuy/source.png\nux/source.png\n")
    with HostileComfy() as server:
        code, _, err, _ = render(capsys, "--batch", "jobs.csv", "--server", server.url, "--out", "out")
        uploaded = sorted(server.uploads)
    assert code == 0, err
    assert len(uploaded) == 2 and all(n.startswith("tpsmm/source-") for n in uploaded)   # named by content
    colours = [np.asarray(Image.open(files / "out" / f"row-{i}" / "x.png"))[0, 0].tolist() for i in (1, 2, 3)]
    assert colours == [[255, 0, 0], [0, 0, 255], [255, 0, 0]]
    for i in (1, 2, 3):                                     # the summary says which row wrote which files
        assert f"row {i} (line {i + 1}) wrote {files / 'out' / f'row-{i}' / 'x.png'}" in err


@pytest.mark.parametrize("tricks, message", [
    ({"/object_info": {"mode": "huge", "size": 1 << 30}}, "above the 64 MiB limit for an answer (--max-response)"),
    ({"/object_info": {"mode": "huge", "size": 1 << 30, "length": False}}, "more than 64 MiB"),
    ({"/object_info": {"body": b'{"SaveImage": {"input": []}}'}}, "the schema of 'SaveImage' is malformed"),
    ({"/view": {"mode": "huge", "size": 1 << 30}}, "above the 16 MiB limit for a result file (raise --max-download"),
    ({"/view": {"body": b"GIF89a, but not really" * 50}}, "is not an image file; not saving it"),
    ({"subfolder": ".tpsmm-jobs"}, "a hidden name, like the tool's own records (.tpsmm-jobs)"),
    ({"filename": ".x.png.partial-1-a.png"}, "a hidden name"),
])
def test_what_a_server_sends_is_capped_checked_and_confined(files, capsys, tricks, message):
    with HostileComfy(tricks) as server:
        code, _, err, _ = render(capsys, "--set", "1.image=ux/source.png", "--server", server.url, "--out", "out",
                                 "--max-download", "16")
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (files / "out").exists() or not [p for p in (files / "out").rglob("*") if p.is_file()]


def test_clashes_and_existing_results_are_refused_before_anything_is_sent(files, capsys):
    cases = {"1.image,2.filename_prefix\nux/source.png,a/x\nout/a/x.png,b/y\n":
             "jobs.csv line 3: 1.image out/a/x.png is written by line 2; a batch cannot read what it writes",
             "1.image,2.filename_prefix\nux/source.png,a/x\nuy/source.png,a/x\n":
             "jobs.csv line 3: 2.filename_prefix out/a/x.* is also the output of line 2",
             "1.image,2.filename_prefix\nux/source.png,a/x\nuy/source.png,old\n":
             "jobs.csv line 3: 2.filename_prefix out/old.png exists already; not overwriting it"}
    (files / "out").mkdir()
    (files / "out" / "old.png").write_bytes(b"mine")
    with HostileComfy() as server:
        for text, message in cases.items():
            (files / "jobs.csv").write_text(text)
            code, _, err, _ = render(capsys, "--batch", "jobs.csv", "--server", server.url, "--out", "out")
            assert code == 1 and message in err and len(err.strip().splitlines()) == 1, (text, err)
        code, _, err, _ = render(capsys, "--set", "1.image=ux/source.png", "--set", "2.filename_prefix=old",
                                 "--server", server.url, "--out", "out")
        assert code == 1 and "out/old.png exists already" in err
        assert server.uploads == {} and server.prompts == []
    assert (files / "out" / "old.png").read_bytes() == b"mine"


def _spawn(files, url, *extra):
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "tpsmm", "render", "wf.json", "--quiet", "--set",
                             "1.image=ux/source.png", "--server", url, "--out", "out", *extra], cwd=files, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_in_a_dripping_download_stops_at_once_and_leaves_no_partial_file(files, sig):
    with HostileComfy({"/view": {"mode": "drip"}}, drip_every=0.5) as server:
        proc = _spawn(files, server.url)
        assert server.started.wait(60)
        time.sleep(1.0)
        assert leftovers(files)                     # the download is under way into a hidden temporary file
        start = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143) and "tpsmm: " in err, err
    assert time.monotonic() - start < HANG and not leftovers(files)
