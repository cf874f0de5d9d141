"""TPSMM Find Face and the bundled ``animate_photo`` workflow, run headless on a tiny checkpoint."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from test_face import FACES, WEIGHTS, photo
from test_face_track import in_canvas

from tpsmm.__main__ import main
from tpsmm.core import FaceError, driving_box, find_face
from tpsmm.core.animation.face_detect import WEIGHTS_NAME, load_face_detector
from tpsmm.core.media.image_io import save_image
from tpsmm.core.media.video import VideoReader, VideoWriter, probe_video
from tpsmm.core.model.checkpoint import save_checkpoint
from tpsmm.tpsmm_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from tpsmm.tpsmm_nodes.executor import default_registry
from tpsmm.tpsmm_nodes.graph import validate
from tpsmm.tpsmm_nodes.headless_nodes import HeadlessVideo
from tpsmm.tpsmm_nodes.nodes_crop import Crop
from tpsmm.tpsmm_nodes.nodes_face import PREVIEW_COLOUR, FindFace
from tpsmm.tpsmm_nodes.workflow_format import ui_to_api

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


@pytest.fixture
def comfy_models(tmp_path, monkeypatch):
    """Run in a folder whose models/facedetection holds the weights (the ComfyUI lookup outside ComfyUI)."""
    folder = tmp_path / "models" / "facedetection"
    folder.mkdir(parents=True)
    os.symlink(WEIGHTS, folder / WEIGHTS_NAME)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))          # an empty hub cache
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_find_face_node_on_a_photo(comfy_models):
    assert NODE_CLASS_MAPPINGS["TPSMM_FindFace"] is FindFace
    assert NODE_DISPLAY_NAME_MAPPINGS["TPSMM_FindFace"] == "TPSMM Find Face"
    image = photo("two_faces.png")
    box, preview = FindFace().find(face_index=0, image=image[None])
    detector = load_face_detector(WEIGHTS)
    assert box == find_face(image, index=0, detector=detector)
    assert preview.shape == (1, *image.shape)
    edge = preview[0, box.y + box.h // 2, max(box.x, 0)]                # left edge of the box, drawn
    assert torch.allclose(edge, torch.tensor(PREVIEW_COLOUR))
    region, same = Crop().crop(image[None], box=box)
    assert same == box and region.shape == (1, box.h, box.w, 3)
    with pytest.raises(FaceError, match=r"Find Face: image: face index 7 is out of range"):
        FindFace().find(face_index=7, image=image[None])
    with pytest.raises(ValueError, match="connect exactly one of 'image'"):
        FindFace().find()


def test_find_face_node_on_a_clip(comfy_models):
    with VideoReader(FACES / "talking.mp4", max_frames=20) as reader:
        clip = torch.from_numpy(np.stack(list(reader)))
    frames = in_canvas(clip).float() / 255
    expected = driving_box(frames, weights=WEIGHTS)
    box, preview = FindFace().find(image=frames)
    assert box == expected and preview.shape == (1, 720, 1280, 3)
    box, _ = FindFace().find(video=HeadlessVideo(images=frames, fps=25.0))
    assert box == expected


def test_find_face_node_names_the_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.chdir(tmp_path)
    import tpsmm.tpsmm_nodes.nodes_face as nodes_face

    monkeypatch.setattr(nodes_face, "load_face_detector",                # never try the internet in a test
                        lambda **kw: load_face_detector(**kw, download=False))
    with pytest.raises(FaceError, match=r"face detector weights not found: put yunet_final.pth .* or "
                                        r"models/facedetection, or pass --face-weights FILE"):
        FindFace().find(image=photo("portrait.png")[None])


def test_animate_photo_workflow_twins_and_validation(comfy_models, monkeypatch):
    (comfy_models / "vox.safetensors").write_bytes(b"")               # validation only checks that it exists
    monkeypatch.setenv("TPSMM_MODELS_DIR", str(comfy_models))
    api = json.loads((WORKFLOWS / "animate_photo_api.json").read_text())
    ui = json.loads((WORKFLOWS / "animate_photo.json").read_text())
    registry = default_registry()
    converted = ui_to_api(ui, registry)
    assert {k: (v["class_type"], v["inputs"]) for k, v in converted.items()} == \
           {k: (v["class_type"], v["inputs"]) for k, v in api.items()}
    assert set(validate(api, registry)) == set(api)


def test_animate_photo_workflow_renders_the_full_photo(comfy_models, capsys):
    (comfy_models / "models" / "tpsmm").mkdir()
    save_checkpoint(make_tiny_model(), str(comfy_models / "models" / "tpsmm" / "tiny.safetensors"))
    image = photo("portrait.png")
    save_image(str(comfy_models / "photo.png"), image.numpy())
    with VideoReader(FACES / "talking.mp4", max_frames=12) as reader:
        clip = torch.from_numpy(np.stack(list(reader)))
    with VideoWriter(str(comfy_models / "talking.mp4"), fps=25) as writer:
        writer.write(in_canvas(clip)[:, :480, :960].numpy())
    code = main(["render", str(WORKFLOWS / "animate_photo_api.json"), "--set", "4.ckpt_name=tiny.safetensors",
                 "--models-dir", "models/tpsmm", "--out", str(comfy_models / "out"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    videos = list((comfy_models / "out").rglob("*.mp4"))
    assert len(videos) == 1
    info = probe_video(videos[0])
    assert (info.width, info.height, info.frame_count) == (680, 676, 12)   # the photo's size, one frame per frame
    with VideoReader(videos[0]) as reader:
        first = torch.from_numpy(next(iter(reader))).float() / 255
    box = find_face(image, weights=WEIGHTS).clip(680, 676)
    outside = torch.ones(676, 680, dtype=torch.bool)
    outside[box.y:box.y + box.h, box.x:box.x + box.w] = False
    inside = ~outside
    error_out = (first - image).abs()[outside].mean()
    error_in = (first - image).abs()[inside].mean()
    assert error_out < 0.03 < error_in                                 # the still photo outside, animated inside
