"""Hostile outputs for ``tpsmm animate`` (and the writers every command uses): nothing of the user's is destroyed.

Every refusal is checked for: exit status 1 (2 for option errors), exactly one ``tpsmm animate: error:`` line
naming the flag/path, no partial file, and every pre-existing file byte-identical afterwards.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from conftest import make_tiny_model
from hostile_util import snapshot
from tpsmm.__main__ import main
from tpsmm.core.media.atomic import UnsafeOutputError, atomic_write, remove_stale_temps, sibling_temp_path
from tpsmm.core.media.image_io import VideoError, save_image
from tpsmm.core.media.video_writer import VideoWriter
from tpsmm.core.model.checkpoint import save_checkpoint


@pytest.fixture
def inputs(tmp_path):
    """A tiny checkpoint, a source image and a 4-frame driving folder inside ``tmp_path/in``."""
    folder = tmp_path / "in"
    (folder / "frames").mkdir(parents=True)
    save_checkpoint(make_tiny_model(), str(folder / "tiny.safetensors"))
    rng = np.random.default_rng(0)
    save_image(str(folder / "source.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for i in range(4):
        save_image(str(folder / "frames" / f"{i:03d}.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    return folder


def animate(inputs, *extra, driving=None) -> list[str]:
    return ["animate", "--checkpoint", str(inputs / "tiny.safetensors"), "--source", str(inputs / "source.png"),
            "--driving", str(driving or inputs / "frames"), "--device", "cpu", *extra]


def refused(capsys, code: int, argv: list[str], *needles: str) -> str:
    """Run ``argv``; assert exit ``code`` and one error line containing every needle; return the line."""
    assert main(argv) == code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if ": error: " in line]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def no_temps(folder) -> bool:
    return not any(".partial-" in name for _, dirs, files in os.walk(folder) for name in dirs + files)


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_special_out_is_refused_even_with_overwrite(tmp_path, inputs, capsys, kind):
    target = tmp_path / "precious.mp4"
    target.write_bytes(b"precious bytes")
    out = tmp_path / "out.mp4"
    out.symlink_to(target) if kind == "symlink" else os.mkfifo(out)
    before = snapshot(tmp_path)
    refused(capsys, 1, animate(inputs, "--out", str(out), "--overwrite"), "--out", str(out),
            "symbolic link" if kind == "symlink" else "FIFO")
    assert snapshot(tmp_path) == before and no_temps(tmp_path)


def test_dev_null_renders_and_discards(tmp_path, inputs, capsys):
    before = snapshot(tmp_path)
    assert main(animate(inputs, "--out", os.devnull)) == 0
    assert snapshot(tmp_path) == before and os.path.exists(os.devnull) and not os.path.isfile(os.devnull)


def test_out_folder_holding_an_input_is_refused(tmp_path, inputs, capsys):
    before = snapshot(tmp_path)
    refused(capsys, 1, animate(inputs, "--out", str(inputs) + "/", "--overwrite"), "--out", "holds the")
    refused(capsys, 1, animate(inputs, "--out", str(inputs / "frames"), "--overwrite"), "--out",
            "the driving video")
    assert snapshot(tmp_path) == before


def test_nested_outputs_are_refused_before_rendering(tmp_path, inputs, capsys):
    a = tmp_path / "a" / "b"
    refused(capsys, 1, animate(inputs, "--out", f"{a}/", "--save-flow", f"{a}/flow.mp4"), "--save-flow",
            "inside or around the --out output")
    assert not (tmp_path / "a").exists()


def test_parent_that_is_a_file_is_refused_before_rendering(tmp_path, inputs, capsys):
    (tmp_path / "file").write_text("x")
    before = snapshot(tmp_path)
    refused(capsys, 1, animate(inputs, "--out", str(tmp_path / "file" / "out.mp4")), "--out", "is a file")
    assert snapshot(tmp_path) == before


def test_fifo_inputs_are_refused_not_waited_on(tmp_path, inputs, capsys):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    refused(capsys, 1, animate(inputs, "--out", str(tmp_path / "o.mp4"), driving=fifo), str(fifo), "not a regular")
    assert time.monotonic() - t0 < 60 and not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("flag", ["--strength", "--smooth-strength"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_numeric_options_are_refused(tmp_path, inputs, capsys, flag, value):
    refused(capsys, 2, animate(inputs, "--out", str(tmp_path / "o.mp4"), flag, value), flag, "finite")
    assert not (tmp_path / "o.mp4").exists()


def test_long_output_names_still_work(tmp_path, inputs):
    out = tmp_path / ("x" * 250 + ".mp4")
    assert main(animate(inputs, "--out", str(out))) == 0
    assert out.is_file() and no_temps(tmp_path)


def test_stale_temps_of_a_killed_run_are_removed_by_the_next_run(tmp_path):
    out = str(tmp_path / "clip.mp4")
    dead = os.fork()
    if dead == 0:  # a child that leaves a temp behind, as a SIGKILLed run would
        sibling_temp_path(out)
        os._exit(0)
    os.waitpid(dead, 0)
    mine = sibling_temp_path(out)  # the next run: its own temp is made, the dead run's is gone
    left = [n for n in os.listdir(tmp_path) if ".partial-" in n]
    assert left == [os.path.basename(mine)]
    assert remove_stale_temps(out) == []  # a live process's temp is never touched


def test_writers_refuse_links_devices_and_folders(tmp_path):
    target = tmp_path / "t.png"
    target.write_bytes(b"keep")
    link = tmp_path / "l.png"
    link.symlink_to(target)
    with pytest.raises(VideoError, match="symbolic link"):
        save_image(str(link), np.zeros((4, 4, 3), np.uint8), overwrite=True)
    with pytest.raises(UnsafeOutputError, match="character device"):
        atomic_write("/dev/zero", lambda tmp: open(tmp, "w").close())
    (tmp_path / "d.png").mkdir()
    with pytest.raises(VideoError, match="is a folder"):
        save_image(str(tmp_path / "d.png"), np.zeros((4, 4, 3), np.uint8), overwrite=True)
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "00000.png").write_bytes(b"p")
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(VideoError, match="holds other files"):
        VideoWriter(str(folder), fps=10, overwrite=True)
    assert target.read_bytes() == b"keep" and (folder / "notes.txt").read_text() == "mine"


def test_gif_bomb_driving_and_bad_sizes_are_refused_in_one_line(tmp_path, inputs, capsys):
    from test_hostile_inputs import GIF_BOMB

    bomb = tmp_path / "bomb.gif"
    bomb.write_bytes(GIF_BOMB)
    out = str(tmp_path / "o.mp4")
    refused(capsys, 1, animate(inputs, "--out", out, driving=bomb), "bomb.gif", "8000x8000", "--max-pixels")
    refused(capsys, 1, animate(inputs, "--out", out, "--size", "0"), "--size", ">= 1")
    refused(capsys, 1, animate(inputs, "--out", out, "--max-pixels", "-1"), "--max-pixels")
    assert not os.path.exists(out) and no_temps(tmp_path)
