"""OpenVINO in bfloat16: the precision policy written into the graph (core/backends/mixed_precision.py), and what
``auto`` picks per dtype.

The rewritten generator must run its convolution trunks in bf16 and keep the TPS solve, grids, sampling, softmax
and blends in float32; OpenVINO's own bf16 hint, which rounds the grid coordinates too, is the counter-example the
numeric test must beat by a wide margin.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_tiny_model
from tpsmm.core.backends.choice import BACKEND_ENV, resolve_backend
from tpsmm.core.backends.export import export_graphs
from tpsmm.core.backends.mixed_precision import CONVOLUTIONS, bf16_trunks
from tpsmm.core.backends.runtimes import installed

ov = pytest.importorskip("openvino", reason="openvino is not installed (pip install \"tpsmm[openvino]\")")
pytest.importorskip("onnx", reason="onnx is not installed (pip install \"tpsmm[export]\")")

FLOAT32_OPS = ("GridSample", "MatMul", "Softmax", "Sigmoid", "Exp", "ReduceSum")


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    folder = tmp_path_factory.mktemp("precision") / "tiny-onnx"
    export_graphs(make_tiny_model(), str(folder))
    return str(folder / "generator.onnx")


@pytest.fixture(scope="module")
def feeds():
    g = torch.Generator().manual_seed(1)
    kp = lambda b: (torch.rand(b, 10, 2, generator=g) * 1.6 - 0.8).numpy()  # noqa: E731
    return dict(source=torch.rand(1, 3, 64, 64, generator=g).numpy(), source_keypoints=kp(1), driving_keypoints=kp(3))


def test_trunks_run_in_bf16_and_the_geometry_in_float32(generator):
    model = ov.Core().read_model(generator)
    before = [(p.get_any_name(), p.get_element_type()) for p in model.inputs + model.outputs]
    changed = bf16_trunks(ov, model)
    ops = model.get_ordered_ops()
    types = {t: [n.get_output_element_type(0) for n in ops if n.get_type_name() == t]
             for t in CONVOLUTIONS + FLOAT32_OPS + ("MVN", "DepthToSpace")}
    assert changed > len(types["Convolution"]) > 0
    assert set(types["Convolution"]) == {ov.Type.bf16}
    assert ov.Type.bf16 in types["MVN"]                                  # normalisation inside the trunks
    assert set(types["DepthToSpace"]) == {ov.Type.bf16}                  # the sub-pixel blocks' pixel shuffles
    for name in FLOAT32_OPS:
        assert set(types[name]) <= {ov.Type.f32}, name
    assert types["GridSample"] and types["MatMul"]
    assert [(p.get_any_name(), p.get_element_type()) for p in model.inputs + model.outputs] == before


def test_bf16_graph_keeps_grids_exact_where_the_bf16_hint_does_not(generator, feeds):
    core = ov.Core()

    def run(model, hint):
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
        result = compiled.create_infer_request().infer(feeds)
        return [np.array(result[o]) for o in compiled.outputs]                # frames, occlusion, deformation

    reference = run(core.read_model(generator), "f32")
    mixed = core.read_model(generator)
    bf16_trunks(ov, mixed)
    ours = run(mixed, "f32")
    psnr = 10 * np.log10(1 / float(((ours[0] - reference[0]) ** 2).mean()))
    assert psnr > 40, psnr
    assert np.abs(ours[2] - reference[2]).max() < 1e-2                  # the bf16 hint: ~0.2 on this model
    assert np.isfinite(ours[0]).all() and ours[0].shape == reference[0].shape


def test_a_model_without_convolutions_is_left_alone():
    from openvino import opset13 as ops

    x = ops.parameter([1, 4], np.float32, name="x")
    model = ov.Model([ops.relu(x)], [x])
    assert bf16_trunks(ov, model) == 0
    assert model.get_output_element_type(0) == ov.Type.f32


@pytest.mark.parametrize("dtype, expected", [(torch.float32, ("openvino", "onnxruntime")),
                                             (torch.bfloat16, ("openvino",))])
def test_auto_picks_openvino_on_the_cpu_in_both_precisions(monkeypatch, dtype, expected):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    first = next((r for r in expected if installed(r)), "torch")
    assert resolve_backend("auto", "cpu", dtype) == first == "openvino"
    assert resolve_backend("auto", "cuda", dtype) == "torch"
    monkeypatch.setenv(BACKEND_ENV, "torch")
    assert resolve_backend("auto", "cpu", dtype) == "torch"


def test_the_pipeline_in_bf16_on_openvino_stays_close_to_float32():
    """End to end (cache entry, internal graphs, trunks in bf16 where the CPU has native bf16, else float32 with the
    usual warning): frames within 35 dB PSNR of the torch float32 pipeline, motion in float32."""
    import warnings

    from tpsmm.core import AnimationOptions, AnimationPipeline

    model = make_tiny_model()
    g = torch.Generator().manual_seed(6)
    source, driving = torch.rand(1, 64, 64, 3, generator=g), torch.rand(4, 64, 64, 3, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)               # float32 fallback on CPUs without bf16
        runs = {backend: list(AnimationPipeline(model, AnimationOptions(backend=backend, dtype=dtype,
                                                                        batch_size=2)).run(source, driving))
                for backend, dtype in [("torch", "float32"), ("openvino", "bfloat16")]}
    want = torch.cat([o.frames for o in runs["torch"]])
    got = torch.cat([o.frames for o in runs["openvino"]])
    mse = float(((got - want) ** 2).mean())
    assert got.shape == want.shape and (mse == 0 or 10 * np.log10(1 / mse) > 35)
