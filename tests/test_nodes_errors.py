"""Bad input to the nodes: each one raises a ValueError/RuntimeError whose one-line text tells the user what to do."""
from __future__ import annotations

import warnings

import pytest
import torch
from comfy_nodes import call, validate
from conftest import make_tiny_model, tiny_model_config
from safetensors.torch import save_file

from tpsmm.core.model.checkpoint import save_checkpoint
from tpsmm.core import TPSMM


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    save_checkpoint(make_tiny_model(), str(d / "tiny.safetensors"))
    save_checkpoint(make_tiny_model(seed=7), str(d / "other.safetensors"))
    torch.manual_seed(0)
    save_checkpoint(TPSMM(tiny_model_config(), with_avd=False).eval(), str(d / "no_avd.safetensors"))
    save_file({"model.diffusion_model.input_blocks.0.weight": torch.zeros(4, 4)}, str(d / "sd15.safetensors"),
              metadata={"format": "pt"})
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, str(d / "foreign.pth"))
    return d


@pytest.fixture
def load(models_dir, monkeypatch):
    monkeypatch.setenv("TPSMM_MODELS_DIR", str(models_dir))
    return lambda name, **kw: call("TPSMM_LoadCheckpoint", ckpt_name=name, **kw)[0]


def expect(exc_types, pattern, fn, *args, **kwargs):
    with pytest.raises(exc_types, match=pattern) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, (ValueError, RuntimeError)) and "\n" not in str(info.value)
    return str(info.value)


def test_no_checkpoint_chosen_or_missing(load):
    expect(ValueError, "no checkpoint chosen.*models/tpsmm", load, "")
    msg = expect(ValueError, "checkpoint 'gone.safetensors' not found", load, "gone.safetensors")
    assert "model folder" in msg


def test_checkpoint_of_another_architecture(load):
    expect(ValueError, "sd15.safetensors: safetensors file without tpsmm metadata", load, "sd15.safetensors")
    expect(ValueError, "foreign.pth: missing network", load, "foreign.pth")  # official-format file, other networks


def test_gpu_request_without_gpu(load):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    expect(RuntimeError, "device 'gpu': no GPU is available", load, "tiny.safetensors", device="gpu")


def test_node_dtype_follows_the_core_rule(load):
    """fp16 on the CPU: the same fallback as the CLI and the API (bf16 where native, else fp32, with a warning)."""
    from tpsmm.core.device import resolve_dtype

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = resolve_dtype("fp16", torch.device("cpu"))
        placed = load("tiny.safetensors", device="cpu", dtype="fp16")
    assert placed.dtype == expected and expected != torch.float16


def test_source_and_driving_of_different_shapes(load):
    model = load("tiny.safetensors")
    wide = torch.rand(1, 36, 64, 3)
    square = torch.rand(3, 48, 48, 3)
    msg = expect(ValueError, "source is 64x36 but the driving frames are 48x48", call, "TPSMM_Animate", model=model,
                 source=wide, driving=square)
    assert "allow_stretch" in msg
    stretched = call("TPSMM_Animate", model=model, source=wide, driving=square, allow_stretch=True)[0]
    assert stretched.shape == (3, 64, 64, 3)
    assert call("TPSMM_Animate", model=model, source=torch.rand(1, 96, 96, 3), driving=square)[0].shape[0] == 3


def test_empty_image_batch(load):
    model = load("tiny.safetensors")
    empty = torch.zeros(0, 64, 64, 3)
    expect(ValueError, "images: the image batch is empty", call, "TPSMM_ExtractKeypoints", model=model, images=empty)
    expect(ValueError, "driving: the image batch is empty", call, "TPSMM_Animate", model=model,
           source=torch.rand(1, 64, 64, 3), driving=empty)
    kp = call("TPSMM_ExtractKeypoints", model=model, images=torch.rand(1, 64, 64, 3))[0]
    motion = call("TPSMM_EstimateMotion", model=model, source_keypoints=kp, driving_keypoints=kp)[0]
    expect(ValueError, "source: the image batch is empty", call, "TPSMM_Generate", model=model, source=empty,
           motion=motion)
    expect(ValueError, "the image batch is empty", call, "TPSMM_DrawKeypoints", images=empty, keypoints=None)


def test_keypoints_from_another_model(load):
    a, b = load("tiny.safetensors"), load("other.safetensors")
    img = torch.rand(1, 64, 64, 3)
    kp_a = call("TPSMM_ExtractKeypoints", model=a, images=img)[0]
    kp_b = call("TPSMM_ExtractKeypoints", model=b, images=torch.rand(2, 64, 64, 3))[0]
    expect(ValueError, "kp_driving: keypoints come from another model", call, "TPSMM_EstimateMotion", model=a,
           source_keypoints=kp_a, driving_keypoints=kp_b)
    kp_b1 = call("TPSMM_ExtractKeypoints", model=b, images=img)[0]
    motion = call("TPSMM_EstimateMotion", model=b, source_keypoints=kp_b1, driving_keypoints=kp_b)[0]
    expect(ValueError, "motion: it was estimated with another model", call, "TPSMM_Generate", model=a, source=img,
           motion=motion)
    expect(ValueError, "motion: it was estimated with another model", call, "TPSMM_VisualizeMotion", model=a,
           motion=motion)


def test_avd_without_avd_network(load):
    model = load("no_avd.safetensors")
    img = torch.rand(1, 64, 64, 3)
    msg = expect(ValueError, "mode 'avd': this checkpoint has no AVD network", call, "TPSMM_Animate", model=model,
                 source=img, driving=torch.rand(2, 64, 64, 3), mode="avd")
    assert "relative" in msg
    kp = call("TPSMM_ExtractKeypoints", model=model, images=img)[0]
    expect(ValueError, "no AVD network", call, "TPSMM_EstimateMotion", model=model, source_keypoints=kp,
           driving_keypoints=kp, mode="avd")


def test_other_wiring_mistakes(load):
    model = load("tiny.safetensors")
    img = torch.rand(1, 64, 64, 3)
    expect(ValueError, "TPSMM Extract Keypoints: connect exactly one of 'images' \\(IMAGE\\) or 'video'", call,
           "TPSMM_ExtractKeypoints", model=model)
    expect(ValueError, "TPSMM Animate: connect exactly one of 'driving'", call, "TPSMM_Animate", model=model, source=img)
    expect(ValueError, "source: expected one image, got a batch of 2", call, "TPSMM_Animate", model=model,
           source=torch.rand(2, 64, 64, 3), driving=img)
    expect(ValueError, "reference_frame: 5 is outside the 1 driving frames", call, "TPSMM_Animate", model=model,
           source=img, driving=img, reference_frame=5)
    expect(ValueError, "lies outside the 64x64 image", call, "TPSMM_Crop", images=img, x=40, y=0, width=32, height=32)
    expect(ValueError, "values must lie in \\[0,1\\]", call, "TPSMM_ExtractKeypoints", model=model, images=img * 255)


def test_wiring_mistakes_are_refused_when_the_prompt_is_queued():
    """validate_inputs as ComfyUI calls it: linked inputs arrive as None, unlinked ones are left out."""
    msg = "TPSMM Animate: connect exactly one of 'driving' (IMAGE) or 'driving_video' (VIDEO)"
    assert validate("TPSMM_Animate", model=None, source=None) == msg
    assert validate("TPSMM_Animate", model=None, source=None, driving=None, driving_video=None) == msg
    assert validate("TPSMM_Animate", model=None, source=None, driving_video=None) is True
    assert validate("TPSMM_ExtractKeypoints", model=None, images=None) is True
    assert "TPSMM Extract Keypoints: connect exactly one" in validate("TPSMM_ExtractKeypoints", model=None)
    assert validate("TPSMM_FindFace", image=None, video=None) == ("TPSMM Find Face: connect exactly one of 'image' "
                                                                 "(IMAGE) or 'video' (VIDEO)")
    assert validate("TPSMM_LoadCheckpoint", ckpt_name="gone.safetensors").startswith("checkpoint 'gone.safetensors'")
