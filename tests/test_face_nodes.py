"""TPSMM Find Face on photos, frames and videos (the ``animate_photo`` workflow renders in real ComfyUI:
tests/test_render.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from test_face_track import in_canvas
from comfy_nodes import NODES, call
from test_nodes import in_memory_video

from tpsmm.core import FaceError, driving_box, find_face
from tpsmm.core.face.detect import WEIGHTS_NAME, load_face_detector
from tpsmm.core.media.image_io import save_image
from tpsmm.core.media.video import VideoReader, VideoWriter, probe_video
from tpsmm.core.model.checkpoint import save_checkpoint
from tpsmm.tpsmm_nodes.nodes_face import PREVIEW_COLOUR, FindFace

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


@pytest.fixture
def comfy_models(tmp_path, monkeypatch, faces):
    """Run in a folder whose models/facedetection holds the weights (the ComfyUI lookup outside ComfyUI)."""
    folder = tmp_path / "models" / "facedetection"
    folder.mkdir(parents=True)
    os.symlink(faces / WEIGHTS_NAME, folder / WEIGHTS_NAME)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))          # an empty hub cache
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_find_face_node_on_a_photo(comfy_models, detector, photo):
    assert NODES["TPSMM_FindFace"] is FindFace and FindFace.GET_SCHEMA().display_name == "TPSMM Find Face"
    image = photo("two_faces.png")
    box, preview = call("TPSMM_FindFace", face_index=0, image=image[None])
    assert box == find_face(image, index=0, detector=detector)
    assert preview.shape == (1, *image.shape)
    edge = preview[0, box.y + box.h // 2, max(box.x, 0)]                # left edge of the box, drawn
    assert torch.allclose(edge, torch.tensor(PREVIEW_COLOUR))
    region, same = call("TPSMM_Crop", images=image[None], box=box)
    assert same == box and region.shape == (1, box.h, box.w, 3)
    with pytest.raises(FaceError, match=r"Find Face: image: face index 7 is out of range"):
        call("TPSMM_FindFace", face_index=7, image=image[None])
    with pytest.raises(ValueError, match="connect exactly one of 'image'"):
        call("TPSMM_FindFace")


def test_find_face_node_on_a_clip(comfy_models, faces):
    with VideoReader(faces / "talking.mp4", max_frames=20) as reader:
        clip = torch.from_numpy(np.stack(list(reader)))
    frames = in_canvas(clip).float() / 255
    expected = driving_box(frames, weights=faces / WEIGHTS_NAME)
    box, preview = call("TPSMM_FindFace", image=frames)
    assert box == expected and preview.shape == (1, 720, 1280, 3)
    box, _ = call("TPSMM_FindFace", video=in_memory_video(frames, fps=25.0))
    assert box == expected


def test_find_face_node_names_the_missing_weights(tmp_path, monkeypatch, photo):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.chdir(tmp_path)
    import tpsmm.tpsmm_nodes.nodes_face as nodes_face

    monkeypatch.setattr(nodes_face, "load_face_detector",                # never try the internet in a test
                        lambda **kw: load_face_detector(**kw, download=False))
    with pytest.raises(FaceError, match=r"face detector weights not found: put yunet_final.pth .* or "
                                        r"models/facedetection, or pass --face-weights FILE"):
        call("TPSMM_FindFace", image=photo("portrait.png")[None])
