"""ComfyUI node pack: V3 schemas by ComfyUI's own rules, one entry point, and every node on a tiny random model
(ComfyUI's comfy_api imported from the snapshot; no server)."""
from __future__ import annotations

import asyncio
import inspect
import subprocess
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from comfy_nodes import NODES, call
from conftest import bf16_fallback, make_tiny_model

import tpsmm
from tpsmm.core.model.checkpoint import save_checkpoint
from tpsmm.core.media.crop import CropBox
from tpsmm.core.model.structures import Keypoints, Motion
from tpsmm.core.media.video import VideoWriter
from tpsmm.tpsmm_nodes import comfy_compat
from tpsmm.tpsmm_nodes.runtime import PlacedModel
from comfy_api.latest import InputImpl, Types, io  # noqa: E402  (importable once comfy_nodes found ComfyUI)

ROOT = Path(__file__).resolve().parents[1]
CLASSIC_NAMES = {  # the ids and titles of the pack's classic (V1) version: saved workflows refer to them
    "TPSMM_LoadCheckpoint": "TPSMM Load Checkpoint", "TPSMM_ExtractKeypoints": "TPSMM Extract Keypoints",
    "TPSMM_EstimateMotion": "TPSMM Estimate Motion", "TPSMM_Generate": "TPSMM Generate",
    "TPSMM_Animate": "TPSMM Animate", "TPSMM_DrawKeypoints": "TPSMM Draw Keypoints",
    "TPSMM_VisualizeMotion": "TPSMM Visualize Motion", "TPSMM_Crop": "TPSMM Crop",
    "TPSMM_PasteBack": "TPSMM Paste Back", "TPSMM_FindFace": "TPSMM Find Face"}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    save_checkpoint(make_tiny_model(), str(d / "tiny.safetensors"))
    (d / "sub").mkdir()
    save_checkpoint(make_tiny_model(seed=1), str(d / "sub" / "other.safetensors"))
    (d / "notes.txt").write_text("not a model")
    return d


@pytest.fixture
def model(models_dir, monkeypatch) -> PlacedModel:
    monkeypatch.setenv("TPSMM_MODELS_DIR", str(models_dir))
    return call("TPSMM_LoadCheckpoint", ckpt_name="tiny.safetensors", device="auto", dtype="auto")[0]


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 96, 96, 3, generator=g), torch.rand(5, 48, 48, 3, generator=g)


# ------------------------------------------------------------------------------------------ schema
@pytest.mark.parametrize("node_id", sorted(CLASSIC_NAMES))
def test_v3_schema_declares_every_socket(node_id):
    cls = NODES[node_id]
    assert issubclass(cls, io.ComfyNode)
    schema = cls.GET_SCHEMA()                     # ComfyUI's own checks (unique ids, ...)
    assert (schema.node_id, schema.display_name) == (node_id, CLASSIC_NAMES[node_id])
    assert schema.category.startswith("TPSMM/") and schema.description
    json.dumps(cls.GET_NODE_INFO_V1())            # /object_info must serialise it
    params = inspect.signature(cls.execute).parameters
    for i in schema.inputs:
        assert i.tooltip, f"{node_id}.{i.id} has no tooltip"
        assert i.id in params, f"{node_id}.execute does not take {i.id}"
        if i.optional:
            assert params[i.id].default is not inspect.Parameter.empty, i.id
        if isinstance(i, (io.Int.Input, io.Float.Input)):
            assert i.min <= i.default <= i.max and isinstance(i.default, int if isinstance(i, io.Int.Input) else float)
        if isinstance(i, io.Combo.Input) and i.default is not None:
            assert i.default in i.options, i.id
    assert schema.outputs and all(o.tooltip and o.display_name for o in schema.outputs)


def test_one_v3_entrypoint_and_no_classic_mappings():
    extension = asyncio.run(tpsmm.comfy_entrypoint())
    assert set(asyncio.run(extension.get_node_list())) == set(NODES.values()) and len(NODES) == len(CLASSIC_NAMES)
    assert not comfy_compat.in_comfyui() and not hasattr(tpsmm, "NODE_CLASS_MAPPINGS")
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    sources = [ROOT / p for p in tracked if not p.startswith("tests/")]              # what a clone of the pack holds
    assert [p for p in sources if "NODE_CLASS_MAPPINGS" in p.read_text(encoding="utf-8")] == []
    assert [p for p in sources if "def comfy_entrypoint" in p.read_text(encoding="utf-8")] == [ROOT / "__init__.py"]
    custom = {o.io_type for c in NODES.values() for o in c.GET_SCHEMA().outputs}
    assert {"TPSMM_MODEL", "TPSMM_KEYPOINTS", "TPSMM_MOTION", "TPSMM_CROP_BOX", "AUDIO"} <= custom


def test_checkpoint_dropdown_lists_model_files(models_dir, monkeypatch):
    monkeypatch.setenv("TPSMM_MODELS_DIR", str(models_dir))
    ckpt = NODES["TPSMM_LoadCheckpoint"].GET_SCHEMA().inputs[0]
    assert ckpt.id == "ckpt_name" and ckpt.options == ["sub/other.safetensors", "tiny.safetensors"]


# ------------------------------------------------------------------------------------------ functions
def test_load_checkpoint(model):
    assert isinstance(model, PlacedModel) and model.size == 64
    assert model.device.type == "cpu" and model.dtype == torch.float32 and not model.tpsmm.training


def test_keypoints_motion_generate_chain(model, images):
    source, driving = images
    before = (source.clone(), driving.clone())
    kp_s = call("TPSMM_ExtractKeypoints", model=model, images=source, batch_size=2)[0]
    kp_d = call("TPSMM_ExtractKeypoints", model=model, images=driving, batch_size=2)[0]
    assert isinstance(kp_s, Keypoints) and kp_s.value.shape == (1, 10, 2) and kp_s.frames.shape == (1, 3, 64, 64)
    assert kp_d.value.shape == (5, 10, 2) and kp_d.frames is None
    assert kp_d.value.abs().max() <= 1
    motion = call("TPSMM_EstimateMotion", model=model, source_keypoints=kp_s, driving_keypoints=kp_d,
                  mode="relative", reference_frame=2, best_frame=False, strength=1.0, smoothing="off",
                  smoothing_strength=0.5, fps=25.0)[0]
    assert isinstance(motion, Motion) and motion.kp_driving.shape == (5, 10, 2)
    assert torch.allclose(motion.kp_driving[2], kp_s.value[0], atol=1e-5)  # the reference frame maps onto the source
    frames, occlusion = call("TPSMM_Generate", model=model, source=source, motion=motion, batch_size=3)
    assert frames.shape == (5, 64, 64, 3) and occlusion.shape == (5, 64, 64)
    assert frames.dtype == torch.float32 and 0 <= frames.min() and frames.max() <= 1
    assert 0 <= occlusion.min() and occlusion.max() <= 1
    assert torch.equal(source, before[0]) and torch.equal(driving, before[1])
    all_in_one = call("TPSMM_Animate", model=model, source=source, driving=driving, mode="relative",
                      reference_frame=2, best_frame=False, strength=1.0, smoothing="off", smoothing_strength=0.5,
                      fps=25.0, batch_size=4, allow_stretch=False)[0]
    torch.testing.assert_close(all_in_one, frames, atol=1e-4, rtol=0)  # other batch size: rounding


def test_modes_strength_and_smoothing(model, images):
    source, driving = images
    kp_s = call("TPSMM_ExtractKeypoints", model=model, images=source, batch_size=8)[0]
    kp_d = call("TPSMM_ExtractKeypoints", model=model, images=driving, batch_size=8)[0]
    defaults = {"mode": "relative", "reference_frame": 0, "best_frame": False, "strength": 1.0, "smoothing": "off",
                "smoothing_strength": 0.5, "fps": 25.0}

    def est(**kw):
        return call("TPSMM_EstimateMotion", model=model, source_keypoints=kp_s, driving_keypoints=kp_d,
                    **{**defaults, **kw})[0]
    assert torch.equal(est(mode="standard").kp_driving, kp_d.value)
    assert est(mode="avd").kp_driving.shape == (5, 10, 2)
    still = est(strength=0.0).kp_driving
    torch.testing.assert_close(still, kp_s.value.expand(5, -1, -1))
    smooth = est(mode="standard", smoothing="ema", smoothing_strength=0.8).kp_driving
    assert torch.equal(smooth[0], kp_d.value[0]) and not torch.allclose(smooth[1:], kp_d.value[1:])
    assert est(best_frame=True).kp_driving.shape == (5, 10, 2)


def test_video_input_streams_like_the_image_batch(model, images, tmp_path):
    _, driving = images
    path = str(tmp_path / "drive.mp4")
    with VideoWriter(path, fps=10) as w:
        w.write(driving)
    video = InputImpl.VideoFromFile(path)
    kp_video = call("TPSMM_ExtractKeypoints", model=model, video=video, batch_size=2)[0]
    kp_images = call("TPSMM_ExtractKeypoints", model=model, images=video.get_components().images, batch_size=2)[0]
    assert kp_video.value.shape == (5, 10, 2)
    torch.testing.assert_close(kp_video.value, kp_images.value, atol=0.02, rtol=0)  # resize order differs slightly
    source = images[0][:, :48, :48]
    out = call("TPSMM_Animate", model=model, source=source, driving_video=video, batch_size=2)[0]
    assert out.shape == (5, 64, 64, 3)


def test_draw_and_visualize(model, images):
    source, driving = images
    kp_s = call("TPSMM_ExtractKeypoints", model=model, images=source, batch_size=8)[0]
    kp_d = call("TPSMM_ExtractKeypoints", model=model, images=driving, batch_size=8)[0]
    drawn = call("TPSMM_DrawKeypoints", images=driving, keypoints=kp_d, radius=2)[0]
    assert drawn.shape == driving.shape and not torch.equal(drawn, driving)
    assert (drawn != driving).any(dim=-1).float().mean() < 0.5  # only dots changed
    motion = call("TPSMM_EstimateMotion", model=model, source_keypoints=kp_s, driving_keypoints=kp_d, mode="standard",
                  reference_frame=0, best_frame=False, strength=1.0, smoothing="off", smoothing_strength=0.5,
                  fps=25.0)[0]
    flow, occ = call("TPSMM_VisualizeMotion", model=model, motion=motion, max_motion=0.0, batch_size=2)
    assert flow.shape == (5, 64, 64, 3) and occ.shape == (5, 64, 64, 3)
    assert torch.equal(occ[..., 0], occ[..., 1]) and 0 <= flow.min() and flow.max() <= 1
    _, mask = call("TPSMM_Generate", model=model, source=source, motion=motion, batch_size=5)
    torch.testing.assert_close(occ[..., 0], mask, atol=1e-5, rtol=0)


def test_crop_and_paste_back(images):
    source, _ = images
    region, box = call("TPSMM_Crop", images=source, x=10, y=20, width=40, height=30)
    assert region.shape == (1, 30, 40, 3) and box == CropBox(x=10, y=20, w=40, h=30)
    assert torch.equal(region[0], source[0, 20:50, 10:50])
    region += 1  # the crop is a copy: the input is untouched
    assert source.max() <= 1
    frames = torch.zeros(3, 64, 64, 3)
    out = call("TPSMM_PasteBack", image=source, frames=frames, box=box, feather=0)[0]
    assert out.shape == (3, 96, 96, 3)
    assert torch.equal(out[:, 20:50, 10:50], torch.zeros(3, 30, 40, 3))
    assert torch.equal(out[1, :20], source[0, :20]) and torch.equal(out[2, 50:], source[0, 50:])


def test_dtype_choice_runs_half_precision_engine(models_dir, monkeypatch, images):
    monkeypatch.setenv("TPSMM_MODELS_DIR", str(models_dir))
    bf16 = call("TPSMM_LoadCheckpoint", ckpt_name="tiny.safetensors", device="cpu", dtype="bf16")[0]
    fp32 = call("TPSMM_LoadCheckpoint", ckpt_name="tiny.safetensors", device="cpu", dtype="fp32")[0]
    assert bf16.dtype == torch.bfloat16 and bf16.tpsmm.dtype == torch.float32  # weights stay fp32
    kw = dict(source=images[0], driving=images[1][:1], batch_size=1)
    with bf16_fallback():
        a = call("TPSMM_Animate", model=bf16, **kw)[0]
    b = call("TPSMM_Animate", model=fp32, **kw)[0]
    assert a.dtype == torch.float32 and (a - b).abs().mean() < 0.05


def in_memory_video(images: torch.Tensor, fps: float):
    """A VIDEO held in memory, as ComfyUI's Create Video makes it (no file to stream)."""
    return InputImpl.VideoFromComponents(Types.VideoComponents(images=images, frame_rate=Fraction(fps)))


def test_video_clip_falls_back_to_components():
    from tpsmm.tpsmm_nodes.steps import clip_of

    frames = torch.from_numpy(np.random.default_rng(0).random((5, 32, 48, 3), dtype=np.float32))
    clip = clip_of(video=in_memory_video(frames, fps=10), name="driving")
    assert (clip.fps, clip.size, clip.frame_count) == (10.0, (32, 48), 5)      # Size(height, width)
    for _ in range(2):                                   # re-iterable: a second pass gives the same frames
        chunks = list(clip.batches(2))
        assert [c.shape[0] for c in chunks] == [2, 2, 1] and torch.equal(torch.cat(chunks), frames)
    capped = clip_of(video=in_memory_video(frames, fps=10), name="driving", max_frames=3)
    assert capped.frame_count == 3 and torch.equal(torch.cat(list(capped.batches(2))), frames[:3])
