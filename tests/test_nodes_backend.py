"""TPSMM Load Checkpoint's ``backend`` input: the node runs the same pipeline on an exported graph runtime."""
from __future__ import annotations

import pytest
import torch
from comfy_nodes import NODES, call
from conftest import make_tiny_model

from tpsmm.core import BACKENDS
from tpsmm.core.backends.runtimes import installed
from tpsmm.core.model.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    save_checkpoint(make_tiny_model(), str(d / "tiny.safetensors"))
    return d


def load(models_dir, monkeypatch, backend):
    monkeypatch.setenv("TPSMM_MODELS_DIR", str(models_dir))
    return call("TPSMM_LoadCheckpoint", ckpt_name="tiny.safetensors", device="cpu", dtype="fp32", backend=backend)[0]


def test_backend_input_lists_every_backend_and_defaults_to_auto():
    (backend,) = [i for i in NODES["TPSMM_LoadCheckpoint"].GET_SCHEMA().inputs if i.id == "backend"]
    assert list(backend.options) == list(BACKENDS) and backend.default == "auto" and backend.tooltip


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_animate_on_a_graph_backend_matches_torch(models_dir, monkeypatch, runtime):
    if not installed(runtime):
        import assets

        assets.missing(f"{runtime} is not installed (pip install -e \".[test]\")")
    source, driving = torch.rand(1, 64, 64, 3), torch.rand(5, 64, 64, 3)
    kw = dict(source=source, driving=driving, mode="relative", batch_size=2)
    ours = call("TPSMM_Animate", model=load(models_dir, monkeypatch, runtime), **kw)[0]
    theirs = call("TPSMM_Animate", model=load(models_dir, monkeypatch, "torch"), **kw)[0]
    assert ours.shape == theirs.shape == (5, 64, 64, 3)
    assert (ours - theirs).abs().max() < 1e-4


def test_a_backend_name_that_does_not_exist_is_one_line(models_dir, monkeypatch):
    with pytest.raises(ValueError, match="backend: expected one of auto, torch, onnxruntime, openvino, got 'tensorrt'"):
        load(models_dir, monkeypatch, "tensorrt")
