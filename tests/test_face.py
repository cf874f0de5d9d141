"""Face detection, framing and paste-back on real faces (the ``faces`` fixture; nothing is downloaded)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tpsmm.core import FaceError, find_face
from tpsmm.core.media.crop import CropBox, crop, paste_back
from tpsmm.core.face.framing import FRAMING_SCALE, MIN_FACE_SIZE, frame_face
from tpsmm.core.face.detect import WEIGHTS_NAME, detect_faces, find_weights, load_face_detector


def landscape(h: int = 480, w: int = 720) -> torch.Tensor:
    """A face-free picture: a sky gradient over rolling green hills, with grain like a photo.

    (Without the grain, YuNet sees a face of score 0.83 in the perfectly flat synthetic shapes.)
    """
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    sky = torch.stack([0.5 + 0.3 * y, 0.7 + 0.2 * y, torch.ones_like(y)], -1)
    hills = torch.stack([0.2 + 0.1 * x, 0.5 + 0.2 * torch.sin(9 * x), 0.2 * torch.ones_like(x)], -1)
    ground = (y > 0.55 + 0.1 * torch.sin(7 * x))[..., None]
    grain = 0.08 * torch.rand(h, w, 3, generator=torch.Generator().manual_seed(0))
    return (torch.where(ground, hills, sky) + grain).clamp(0, 1)


# ---------------------------------------------------------------- weights
def test_weights_lookup_order(tmp_path, monkeypatch, faces):
    weights = faces / WEIGHTS_NAME
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    comfy = tmp_path / "facedetection"
    comfy.mkdir()
    assert find_weights(search_dirs=[str(comfy)]) is None
    os.symlink(weights, comfy / WEIGHTS_NAME)
    assert find_weights(search_dirs=[str(comfy)]) == str(comfy / WEIGHTS_NAME)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    os.symlink(weights, hub / WEIGHTS_NAME)
    assert find_weights(search_dirs=[str(comfy)]) == str(hub / WEIGHTS_NAME)        # the hub cache comes first
    assert find_weights(weights, search_dirs=[str(comfy)]) == str(weights)           # an explicit file wins


def test_weights_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FaceError, match=r"^face_weights: no such file: .*nope\.pth"):
        load_face_detector(tmp_path / "nope.pth")
    with pytest.raises(FaceError) as err:
        load_face_detector(search_dirs=[str(tmp_path / "facedetection")], download=False)
    text = str(err.value)
    assert "\n" not in text and "put yunet_final.pth" in text and str(tmp_path / "torch" / "hub" / "checkpoints") in text
    assert "facedetection" in text and "--face-weights FILE" in text
    foreign = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, foreign)
    with pytest.raises(FaceError, match=r"other\.pth: not YuNet face detector weights \(its tensors do not match"):
        load_face_detector(foreign)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(FaceError, match=r"garbage\.pth: not YuNet face detector weights \(cannot be read"):
        load_face_detector(garbage)


# ---------------------------------------------------------------- source photo
def test_portrait_face_is_framed_square_around_the_face(detector, photo):
    image = photo("portrait.png")                                      # 680x676, one large face
    faces = detect_faces(image, detector)[0]
    assert len(faces) == 1 and faces[0, 4] > 0.9
    x0, y0, x1, y1 = faces[0, :4].tolist()
    assert 150 < x0 < 200 and 520 < x1 < 570 and 200 < y0 < 300 and 590 < y1 < 640   # measured: 177,282,549,619
    box = find_face(image, detector=detector)
    assert box.w == box.h == round(FRAMING_SCALE * max(x1 - x0, y1 - y0))
    assert box.x < x0 and box.y < y0 and box.x + box.w > x1 and box.y + box.h > y1   # the whole face inside
    assert box == find_face(image[None], detector=detector)          # [1,H,W,3] accepted
    assert box == find_face((image.numpy() * 255).round().astype(np.uint8), detector=detector)   # numpy uint8


def test_pasted_result_equals_the_photo_outside_the_box(detector, photo):
    image = photo("portrait.png")
    box = find_face(image, detector=detector)
    animated = torch.rand(4, 256, 256, 3, generator=torch.Generator().manual_seed(0))
    out = paste_back(image, animated, box, feather=16)
    assert out.shape == (4, *image.shape)                              # the photo's size
    part = box.clip(image.shape[1], image.shape[0])
    outside = torch.ones(image.shape[:2], dtype=torch.bool)
    outside[part.y:part.y + part.h, part.x:part.x + part.w] = False
    assert outside.any() and torch.equal(out[:, outside], image[outside].expand(4, -1, -1))
    centre = out[:, part.y + part.h // 2, part.x + part.w // 2]
    assert (centre - image[part.y + part.h // 2, part.x + part.w // 2]).abs().max() > 0.05   # animated inside


def test_face_at_the_border_is_padded_not_shifted(detector, photo):
    image = photo("portrait.png")[:, 200:]                             # the face now touches the left edge
    face = detect_faces(image, detector)[0]
    face = face[(face[:, 2] - face[:, 0]).argmax()]
    box = find_face(image, detector=detector)
    assert box.x < 0                                                   # past the border, not moved inside
    assert box == frame_face(face)
    assert abs(box.x + box.w / 2 - float(face[0] + face[2]) / 2) <= 1  # still centred on the face
    region = crop(image, box)
    assert region.shape == (1, box.h, box.w, 3)
    pad = -box.x
    assert torch.equal(region[0, :, :pad], region[0, :, pad:pad + 1].expand(-1, pad, -1))   # edge repeated
    out = paste_back(image, region, box, feather=0)
    assert out.shape == (1, *image.shape) and torch.allclose(out[0], image, atol=1e-2)


def test_face_index_counts_left_to_right(detector, photo):
    image = photo("two_faces.png")                                     # left face smaller (sunglasses)
    left, right = find_face(image, index=0, detector=detector), find_face(image, index=1, detector=detector)
    assert left.x + left.w / 2 < 500 < 900 < right.x + right.w / 2
    assert left.w < right.w
    assert find_face(image, detector=detector) == right                # default: the largest face
    with pytest.raises(FaceError, match=r"face index -1: expected a whole number >= 0 \(faces count from the left"):
        find_face(image, index=-1, detector=detector)                  # counted from the left only (#21)
    with pytest.raises(FaceError, match=r"image: face index 2 is out of range: 2 face\(s\) found"):
        find_face(image, index=2, detector=detector)


def test_no_face_and_tiny_face_are_refused(detector, photo):
    with pytest.raises(FaceError, match=r"^landscape\.png: no face found$"):
        find_face(landscape(), detector=detector, what="landscape.png")
    with pytest.raises(FaceError, match=rf"crowd: the face is too small \(\d+ px wide, at least {MIN_FACE_SIZE} px"):
        find_face(photo("crowd.jpg"), detector=detector, what="crowd")


# ---------------------------------------------------------------- crop boxes past the border (no detector)
def test_crop_pads_with_edge_pixels_and_paste_keeps_the_inside_part():
    images = torch.rand(2, 10, 12, 3)
    box = CropBox(x=-3, y=8, w=6, h=5)                                 # left and bottom past the border
    region = crop(images, box)
    assert region.shape == (2, 5, 6, 3)
    assert torch.equal(region[:, :2, 3:], images[:, 8:10, 0:3])        # the part inside, in place
    assert torch.equal(region[:, :2, :3], images[:, 8:10, :1].expand(-1, -1, 3, -1))
    assert torch.equal(region[:, 2:], region[:, 1:2].expand(-1, 3, -1, -1))
    with pytest.raises(ValueError, match="does not overlap the 12x10 image"):
        crop(images, CropBox(x=12, y=0, w=4, h=4))
    out = paste_back(images[0], torch.ones(1, 5, 6, 3), box, feather=0)
    assert torch.equal(out[0, 8:10, 0:3], torch.ones(2, 3, 3))
    out[0, 8:10, 0:3] = images[0, 8:10, 0:3]
    assert torch.equal(out[0], images[0])
    uint8 = crop((images * 255).to(torch.uint8), box)
    assert uint8.dtype == torch.uint8 and uint8.shape == (2, 5, 6, 3)
