"""One still driving box from a real talking-head clip placed in a drifting 1280x720 canvas."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tpsmm.core import FaceError, driving_box
from tpsmm.core.media.crop import crop
from tpsmm.core.face.detect import detect_faces
from tpsmm.core.media.video import VideoReader

from test_face import landscape

FRAMES = 45
DRIFT = (3, 2)          # canvas offset of the clip grows by this many pixels (x, y) per frame
ORIGIN = (300, 120)


@pytest.fixture(scope="module")
def talking(faces) -> torch.Tensor:
    with VideoReader(faces / "talking.mp4", max_frames=FRAMES) as reader:
        return torch.from_numpy(np.stack(list(reader)))                # uint8 [45, 412, 410, 3]


def offsets(t: int) -> tuple[int, int]:
    return ORIGIN[0] + DRIFT[0] * t, ORIGIN[1] + DRIFT[1] * t


def in_canvas(clip: torch.Tensor) -> torch.Tensor:
    """Each frame pasted into a grey 1280x720 canvas at an offset that drifts a few pixels per frame."""
    canvas = torch.full((len(clip), 720, 1280, 3), 90, dtype=torch.uint8)
    h, w = clip.shape[1:3]
    for t in range(len(clip)):
        x, y = offsets(t)
        canvas[t, y:y + h, x:x + w] = clip[t]
    return canvas


def test_driving_box_holds_the_face_in_every_frame(detector, talking):
    canvas = in_canvas(talking)
    box = driving_box(canvas, detector=detector)
    assert box.w == box.h and 0 <= box.x and box.x + box.w <= 1280 and 0 <= box.y and box.y + box.h <= 720
    # the same box from a stream of chunks (as a video is read) and from float frames
    chunks = (canvas[i:i + 7] for i in range(0, len(canvas), 7))
    assert driving_box(chunks, detector=detector) == box
    # every frame's face (detected on the clip itself, moved by that frame's offset) lies inside the box
    faces = [f[0] for i in range(0, FRAMES, 15) for f in detect_faces(talking[i:i + 15], detector)]
    assert len(faces) == FRAMES
    for t, face in enumerate(faces):
        x, y = offsets(t)
        x0, y0, x1, y1 = (face[:4] + torch.tensor([x, y, x, y])).tolist()
        assert box.x <= x0 and box.y <= y0 and x1 <= box.x + box.w and y1 <= box.y + box.h, f"frame {t}"
    # it covers the drift (about 132x88 px) plus the framing margin, and no more than needed
    face_side = max(float(faces[0][2] - faces[0][0]), float(faces[0][3] - faces[0][1]))
    assert 1.6 * face_side + DRIFT[0] * (FRAMES - 1) - 80 <= box.w <= 1.6 * face_side + DRIFT[0] * FRAMES + 60
    assert crop(canvas, box).shape == (FRAMES, box.h, box.w, 3)


def test_driving_box_of_an_in_place_clip_is_the_clip_framing(detector, talking):
    box = driving_box(talking.float() / 255, detector=detector, stride=3)
    # the clip is already vox-framed (410x412): the box is about the frame itself
    assert abs(box.x + box.w / 2 - 205) < 30 and abs(box.y + box.h / 2 - 206) < 40 and 380 < box.w < 560


def test_clip_without_a_face_or_losing_it_is_refused(detector, talking):
    empty = (landscape(412, 410) * 255).to(torch.uint8)
    with pytest.raises(FaceError, match=r"^driving\.mp4: a face was found in only 0 of 4 sampled frames"):
        driving_box(empty.expand(20, -1, -1, -1), detector=detector, what="driving.mp4")
    lost = talking[:30].clone()
    lost[20:] = empty                                                   # the face leaves after frame 19
    with pytest.raises(FaceError, match=r"the chosen face disappears at frame 20 \(missing in 2 of 6 sampled"):
        driving_box(lost, detector=detector)


def test_driving_face_index_and_bad_values(detector, talking):
    two = torch.cat([talking[:10], talking[:10]], dim=2)               # the same face twice, side by side
    left, right = driving_box(two, index=0, detector=detector), driving_box(two, index=1, detector=detector)
    assert left.x + left.w / 2 < 410 < right.x + right.w / 2 and abs(right.x - left.x - 410) <= 2
    with pytest.raises(FaceError, match=r"face index 5 is out of range: 2 face\(s\) found"):
        driving_box(two, index=5, detector=detector)
    with pytest.raises(FaceError, match="the face is too small"):
        driving_box(talking[:5, ::4, ::4], detector=detector)
    with pytest.raises(ValueError, match="stride"):
        driving_box(talking[:5], stride=0, detector=detector)
