"""``tpsmm animate --crop face --driving-crop face``: a real photo and an uncropped talking clip, tiny model."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from test_face import landscape
from test_face_track import in_canvas

from tpsmm.core import driving_box, find_face
from tpsmm.core.face.detect import WEIGHTS_NAME, load_face_detector
from tpsmm.core.media.image_io import load_image, save_image
from tpsmm.core.media.video import VideoReader, VideoWriter
from tpsmm.core.model.checkpoint import save_checkpoint

N = 10


@pytest.fixture(scope="module")
def media(tmp_path_factory, faces):
    """tiny.safetensors, talk.mp4 (the talking clip drifting in a 1280x720 canvas), hills.png (no face), and
    portrait.png / yunet_final.pth (links into the faces folder)."""
    d = tmp_path_factory.mktemp("face_cli")
    for name in ("portrait.png", WEIGHTS_NAME):
        os.symlink(faces / name, d / name)
    save_checkpoint(make_tiny_model(), str(d / "tiny.safetensors"))
    with VideoReader(faces / "talking.mp4", max_frames=N) as reader:
        clip = torch.from_numpy(np.stack(list(reader)))
    with VideoWriter(str(d / "talk.mp4"), fps=25) as writer:
        writer.write(in_canvas(clip).numpy())                          # 1280x720, the face drifting
    save_image(str(d / "hills.png"), landscape().numpy())
    return d


@pytest.fixture
def cli(monkeypatch, capsys, media):
    import tpsmm.__main__ as entry

    monkeypatch.setattr(entry, "COMMAND_MODULES", ("tpsmm.core.cli",))
    monkeypatch.setenv("TORCH_HOME", str(media / "torch"))             # an empty hub cache: nothing downloads

    def run(out, *extra, source=str(media / "portrait.png")):
        argv = ["animate", "--checkpoint", str(media / "tiny.safetensors"), "--source", source,
                "--driving", str(media / "talk.mp4"), "--out", str(out), "--batch", "5", "--quiet", *map(str, extra)]
        rc = entry.main(argv)
        cap = capsys.readouterr()
        return rc, cap.out, cap.err
    return run


def test_face_crop_animates_the_face_and_keeps_the_photo(cli, media, tmp_path):
    weights = media / WEIGHTS_NAME
    rc, _, err = cli(tmp_path / "out", "--crop", "face", "--driving-crop", "face", "--face-weights", weights)
    assert rc == 0, err
    got = np.stack(list(VideoReader(tmp_path / "out")))                # PNG frames: lossless
    photo = load_image(media / "portrait.png")
    assert got.shape == (N, 676, 680, 3)                               # the photo's size
    box = find_face(torch.from_numpy(photo), weights=weights).clip(680, 676)
    outside = np.ones((676, 680), bool)
    outside[box.y:box.y + box.h, box.x:box.x + box.w] = False
    still = np.round(photo * 255)
    assert np.array_equal(got[:, outside], np.broadcast_to(still[outside], got[:, outside].shape))
    centre = (slice(box.y + box.h // 3, box.y + 2 * box.h // 3), slice(box.x + box.w // 3, box.x + 2 * box.w // 3))
    assert np.abs(got[:, centre[0], centre[1]] - still[centre]).mean() > 5   # the face is animated


def test_manual_driving_box_and_face_driving_box_agree_on_shape(cli, media, tmp_path):
    weights = media / WEIGHTS_NAME
    with VideoReader(media / "talk.mp4") as reader:
        box = driving_box(reader, detector=load_face_detector(weights))
    rc, _, err = cli(tmp_path / "manual", "--driving-crop", str(box), "--crop", "face", "--face-weights", weights)
    assert rc == 0, err
    rc, _, err = cli(tmp_path / "auto", "--driving-crop", "face", "--crop", "face", "--face-weights", weights)
    assert rc == 0, err
    manual, auto = (np.stack(list(VideoReader(tmp_path / name))) for name in ("manual", "auto"))
    assert np.array_equal(manual, auto)                                # 'face' resolved to the same box


def test_face_errors_are_one_line(cli, media, tmp_path):
    weights = media / WEIGHTS_NAME
    bad = tmp_path / "bad.pth"
    torch.save({"w": torch.zeros(2)}, bad)
    cases = [
        (["--crop", "face", "--face-weights", tmp_path / "none.pth"], {}, "--face-weights: no such file"),
        (["--crop", "face", "--face-weights", bad], {}, "bad.pth: not YuNet face detector weights"),
        (["--crop", "face", "--face-weights", weights], dict(source=str(media / "hills.png")),
         "hills.png: no face found"),
        (["--crop", "face", "--face-index", "3", "--face-weights", weights], {}, "face index 3 is out of range"),
        (["--face-index", "1"], {}, "--face-index needs --crop face"),
        (["--driving-face-index", "1"], {}, "--driving-face-index needs --driving-crop face"),
    ]
    for extra, kw, message in cases:
        out = tmp_path / "y.mp4"
        rc, _, err = cli(out, *extra, **kw)
        assert rc == 1 and message in err, (message, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("tpsmm animate: error: ")
        assert not os.path.exists(out)
    with pytest.raises(SystemExit):
        cli(tmp_path / "z.mp4", "--driving-crop", "middle")


def test_sweep_cases_get_one_line(cli, media, tmp_path, capsys):
    """Cases of the hostile sweep: negative face index, negative/1x1/past-the-border boxes, tiny photos, folders."""
    save_image(str(tmp_path / "one.png"), np.full((1, 1, 3), 0.5, np.float32))
    usage = [(["--crop", "face", "--face-index", "-1"], "argument --face-index: expected a whole number >= 0 (faces "
                                                         "count from the left, 0 = the leftmost), got '-1'"),
             (["--crop", "-50,0,100,100"], "argument --crop: x,y must be >= 0 and w,h at least 2, got '-50,0,100,100'"),
             (["--crop", "0,0,1,1"], "argument --crop: x,y must be >= 0 and w,h at least 2, got '0,0,1,1'")]
    for extra, message in usage:
        with pytest.raises(SystemExit):
            cli(tmp_path / "u.mp4", *extra)
        assert message in capsys.readouterr().err
    cases = [(["--crop", "600,600,100,100"], {},
              "crop box 600,600,100,100 lies outside the 680x676 image: it extends past the right border (x+w = 700 > "
              "680) and the bottom border (y+h = 700 > 676)"),
             (["--crop", "face", "--face-weights", media / WEIGHTS_NAME], dict(source=str(tmp_path / "one.png")),
              "one.png: the image is 1x1 pixels, too small to hold a face of at least 64 px"),
             (["--crop", "face", "--face-weights", tmp_path], {}, f"--face-weights {tmp_path}: is a folder")]
    for extra, kw, message in cases:
        rc, _, err = cli(tmp_path / "y.mp4", *extra, **kw)
        assert rc == 1 and message in err and len(err.strip().splitlines()) == 1, (message, err)
