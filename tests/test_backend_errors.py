"""Bad input of the export and the graph backends: one line, no traceback, nothing of the user's replaced; a stale
cache entry is rebuilt, never used."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from conftest import make_tiny_model
from tpsmm.__main__ import main
from tpsmm.core import AnimationOptions, AnimationPipeline, BackendError
from tpsmm.core.backends import runtimes
from tpsmm.core.backends.cache import CACHE_ENV, cached_export
from tpsmm.core.backends.export import MANIFEST, check_export, export_graphs, graph_names
from tpsmm.core.backends.runtimes import GraphSession, installed
from tpsmm.core.model.checkpoint import save_checkpoint

pytest.importorskip("onnx", reason="onnx is not installed (pip install \"tpsmm[export]\")")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    model = make_tiny_model()
    ckpt = str(root / "tiny.safetensors")
    save_checkpoint(model, ckpt)
    assert main(["export", ckpt, "--out", str(root / "good"), "--quiet"]) == 0
    return root, model, ckpt


def one_line_error(capsys, argv, match):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0] and "Traceback" not in err[0], err
    return err[0]


def test_existing_folder_needs_overwrite_and_only_replaces_an_export(setup, capsys, tmp_path):
    root, _, ckpt = setup
    before = sorted(os.listdir(root / "good"))
    assert before == sorted([MANIFEST, "avd.onnx", "generator.onnx", "keypoints.onnx"])   # the contract's graphs only
    one_line_error(capsys, ["export", ckpt, "--out", str(root / "good")], "--overwrite")
    assert sorted(os.listdir(root / "good")) == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    one_line_error(capsys, ["export", ckpt, "--out", str(mine), "--overwrite"], "not a tpsmm export folder")
    assert (mine / "notes.txt").read_text() == "keep me"
    assert not [p for p in os.listdir(tmp_path) if ".partial-" in p]


def test_foreign_truncated_other_model_and_other_size(setup, tmp_path):
    root, model, _ = setup
    with pytest.raises(BackendError, match="not a folder written by"):
        check_export(str(tmp_path), networks=model)
    bad = tmp_path / "trunc"
    shutil.copytree(root / "good", bad)
    data = (bad / "generator.onnx").read_bytes()
    (bad / "generator.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BackendError, match="truncated or modified"):
        check_export(str(bad), networks=model)
    with pytest.raises(BackendError, match="another model"):
        check_export(str(root / "good"), networks=make_tiny_model(seed=7))
    with pytest.raises(BackendError, match="size 64"):
        check_export(str(root / "good"), networks=make_tiny_model(image_size=128))
    other = tmp_path / "other"
    shutil.copytree(root / "good", other)
    manifest = json.loads((other / MANIFEST).read_text())
    manifest["format"] = "something-else"
    (other / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackendError, match="not a tpsmm export manifest"):
        check_export(str(other))


@pytest.mark.skipif(not installed("onnxruntime"), reason="onnxruntime is not installed")
def test_cli_refuses_graphs_of_another_model(setup, capsys, tmp_path):
    root, _, _ = setup
    other = str(tmp_path / "other.safetensors")
    save_checkpoint(make_tiny_model(seed=3), other)
    from tpsmm.core.media.image_io import save_image
    import numpy as np

    save_image(str(tmp_path / "s.png"), np.random.default_rng(0).random((64, 64, 3), dtype=np.float32))
    one_line_error(capsys, ["animate", "--checkpoint", other, "--source", str(tmp_path / "s.png"), "--driving",
                            str(tmp_path / "s.png"), "--out", str(tmp_path / "o.mp4"), "--backend", "onnxruntime",
                            "--graphs", str(root / "good")], "another model")
    assert not os.path.exists(tmp_path / "o.mp4")


def test_missing_runtime_names_the_pip_command(setup, monkeypatch):
    _, model, _ = setup
    monkeypatch.setitem(runtimes.RUNTIMES, "openvino", "tpsmm_no_such_runtime")
    with pytest.raises(BackendError, match=r'pip install "tpsmm\[openvino\]"'):
        AnimationPipeline(model, AnimationOptions(backend="openvino"))


@pytest.mark.skipif(not installed("openvino"), reason="openvino is not installed")
def test_runtime_that_cannot_use_the_device(setup):
    root, _, _ = setup
    with pytest.raises(BackendError, match="use the cpu device or the torch backend"):
        GraphSession("openvino", str(root / "good" / "keypoints.onnx"), device=torch.device("cuda"),
                     dtype=torch.float32)


@pytest.mark.skipif(not installed("onnxruntime"), reason="onnxruntime is not installed")
def test_stale_cache_entry_is_rebuilt(setup, monkeypatch, tmp_path):
    _, model, _ = setup
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))         # a cache of its own: other tests fill the session's
    notes: list[str] = []
    folder = cached_export(model, "onnxruntime", progress=notes.append)
    assert any("first use" in n for n in notes)
    for damaged in ("generator", "source-cache"):        # a contract graph, an internal one
        with open(os.path.join(folder, f"{damaged}.onnx"), "r+b") as f:
            f.seek(100)
            f.write(b"\0" * 64)
        notes.clear()
        assert cached_export(model, "onnxruntime", progress=notes.append) == folder
        assert any("stale" in n and damaged in n for n in notes), notes
        check_export(folder, networks=model, graphs=graph_names(model, background=True, internal=True))  # whole again
    notes.clear()
    cached_export(model, "onnxruntime", progress=notes.append)
    assert notes == []                                   # a good entry is used as it is
