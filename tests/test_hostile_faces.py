"""Hostile inputs to the face tools and the safe loaders: black and flat frames hold no face, a driving face that
vanishes into black is refused, bad indices/images/weights get one line, zip-bomb checkpoints are refused unread."""
from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tpsmm.core.animation.options import AnimationOptions
from tpsmm.core.face.detect import FaceError, WEIGHTS_NAME, _yunet_from_file, detect_faces, load_face_detector
from tpsmm.core.face.framing import find_face
from tpsmm.core.face.track import driving_box
from tpsmm.core.media.image_io import load_image
from tpsmm.core.media.torch_archive import ArchiveError, check_archive, load_tensors
from tpsmm.core.model.checkpoint import CheckpointError, read_official

@pytest.fixture(scope="module")
def talking_frames(talking) -> torch.Tensor:
    """Every frame of the talking clip, uint8 ``[T,H,W,3]``."""
    with av.open(str(talking)) as c:
        return torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)])


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_uniform_frames_hold_no_face(detector, value):
    frame = torch.full((480, 640, 3), value)
    assert len(detect_faces(frame, detector)[0]) == 0
    with pytest.raises(FaceError, match="^image: no face found$"):
        find_face(frame, detector=detector)


def test_real_faces_are_still_found(detector, talking_frames, faces):
    portrait = torch.from_numpy(load_image(faces / "portrait.png"))
    assert len(detect_faces(portrait, detector)[0]) == 1
    assert len(detect_faces(torch.from_numpy(load_image(faces / "two_faces.png")), detector)[0]) == 2
    assert [len(d) for d in detect_faces(talking_frames[::10], detector)] == [1] * len(talking_frames[::10])


@pytest.mark.parametrize("tail, message", [
    ("black", "the chosen face disappears at frame 60"),
    ("flat", "the chosen face disappears at frame 60"),
])
def test_a_driving_face_vanishing_into_black_or_flat_frames_is_refused(detector, talking_frames, tail, message):
    clip = talking_frames[:90].clone()
    clip[60:] = 0 if tail == "black" else 128
    with pytest.raises(FaceError, match=message):
        driving_box(clip, detector=detector)


@pytest.mark.parametrize("image, kwargs, message", [
    (torch.zeros(0, 0, 3), {}, "image: the image is empty"),
    (torch.rand(1, 1, 3), {}, "image: the image is 1x1 pixels, too small to hold a face of at least 64 px"),
    (torch.rand(100, 100, 3) * 255, {}, "expected float pixel values in \\[0, 1\\], got .*divide 0..255 pixel values"),
    (torch.rand(100, 100, 3), {"index": -1}, "face index -1: expected a whole number >= 0 \\(faces count from the left"),
    (torch.rand(100, 100, 3), {"index": "0"}, "face index '0': expected a whole number >= 0"),
    ("not an image", {}, "expected an image tensor or array, got str"),
])
def test_find_face_refuses_bad_images_and_indices_with_one_line(detector, image, kwargs, message):
    with pytest.raises(FaceError, match=message):
        find_face(image, detector=detector, **kwargs)


def test_driving_box_refuses_a_negative_index_before_detecting(talking_frames):
    with pytest.raises(FaceError, match="face index -2: expected a whole number >= 0"):
        driving_box(talking_frames[:5], index=-2, detector=object())


def test_weights_that_are_a_folder_nan_or_foreign_get_one_line(tmp_path, faces):
    with pytest.raises(FaceError, match="--face-weights .*: is a folder; pass the weights file"):
        load_face_detector(tmp_path, download=False)
    state = torch.load(faces / WEIGHTS_NAME, weights_only=True, map_location="cpu")
    state[next(iter(state))] = torch.full_like(state[next(iter(state))], float("nan"))
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(FaceError, match="nan.pth: not usable YuNet face detector weights .* NaN or infinite"):
        _yunet_from_file(str(tmp_path / "nan.pth"))
    torch.save({"w": torch.zeros(3)}, tmp_path / "p4.pth", pickle_protocol=4)     # torch warns about protocol 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                             # ... but not here
        with pytest.raises(FaceError, match="p4.pth: not YuNet face detector weights"):
            _yunet_from_file(str(tmp_path / "p4.pth"))


def _inflated(path: Path, record: str, size: int) -> None:
    """Rewrite ``path`` (a torch zip) so that ``record`` holds ``size`` zero bytes, deflated to a few KB."""
    with zipfile.ZipFile(path) as z:
        items = [(i, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for info, data in items:
            if info.filename.endswith("/" + record):
                bomb = zipfile.ZipInfo(info.filename)
                bomb.compress_type = zipfile.ZIP_DEFLATED
                with z.open(bomb, "w", force_zip64=True) as f:
                    block = b"\0" * (1 << 20)
                    for _ in range(size >> 20):
                        f.write(block)
            else:
                z.writestr(info, data)


@pytest.mark.parametrize("record, message", [
    ("data/0", "record '.*data/0' would inflate to 67108864 bytes, but its tensors need 16 bytes \\(a zip bomb"),
    ("data.pkl", "its object layout \\(data.pkl\\) would take 67108864 bytes, more than the 64 MiB"),
    ("version", "record '.*version' would inflate to 67108864 bytes, but at most 1048576 bytes expected"),
])
def test_checkpoint_bombs_are_refused_before_anything_is_inflated(tmp_path, record, message):
    path = tmp_path / "bomb.pth.tar"
    torch.save({"kp_detector": {"w": torch.zeros(4)}, "epoch": 1}, path)
    size = (64 << 20) + (1 << 20) if record == "data.pkl" else 64 << 20
    _inflated(path, record, size)
    assert path.stat().st_size < 1 << 20
    message = message.replace("67108864", str(size)) if record == "data.pkl" else message
    with pytest.raises(CheckpointError, match=message):
        read_official(str(path))


def test_a_real_layout_checkpoint_still_loads(tmp_path):
    tensors = {"a": {"w": torch.rand(3, 5), "h": torch.rand(7).half()}, "n": torch.arange(4), "step": torch.tensor(3.0)}
    for protocol in (4, 5):                                        # STACK_GLOBAL + MEMOIZE: sizes still read
        torch.save(tensors, tmp_path / f"p{protocol}.pth.tar", pickle_protocol=protocol)
        check_archive(str(tmp_path / f"p{protocol}.pth.tar"))
    torch.save(tensors, tmp_path / "ok.pth.tar")
    loaded = load_tensors(tmp_path / "ok.pth.tar")
    assert torch.equal(loaded["a"]["w"], tensors["a"]["w"]) and torch.equal(loaded["n"], tensors["n"])
    (tmp_path / "junk.pth").write_bytes(io.BytesIO(b"\x80\x04junk").getvalue())
    with pytest.raises(ArchiveError, match="junk.pth: (refused to load|not a readable PyTorch file)"):
        load_tensors(tmp_path / "junk.pth")


def test_animation_options_api_values():
    assert AnimationOptions(output_size=512).output_size == (512, 512)
    for field, value in (("side_by_side", "no"), ("draw_kp", 1), ("with_motion", None)):
        with pytest.raises(ValueError, match=f"^{field}: expected True or False, got {value!r}$"):
            AnimationOptions(**{field: value})
    assert np.isclose(AnimationOptions(reference_frame=-1).strength, 1.0)   # -1 = the last frame (documented)
