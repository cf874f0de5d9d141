"""Graph backends: the stable solve, the export contract, the README's numpy script, and every pipeline feature
on ONNX Runtime and OpenVINO against the torch path (float32, within 1e-4) — with a user's export folder (the
contract's generator, source re-encoded per batch) and with the cache's internal graphs (source encoded once)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_tiny_model
from tpsmm.core import AnimationOptions, AnimationPipeline
from tpsmm.core.animation.engine import fold_batchnorm
from tpsmm.core.backends.export import MANIFEST, export_graphs
from tpsmm.core.backends.graphs import CONTRACT, INTERNAL
from tpsmm.core.backends.runtimes import installed
from tpsmm.core.geometry.linsolve import householder_solve
from tpsmm.core.geometry.tps import TPS_RIDGE, tps_kernel

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install \"tpsmm[export]\")")
ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = [pytest.param(r, marks=pytest.mark.skipif(not installed(r), reason=f"{r} is not installed "
                                                     f"(pip install \"tpsmm[{r}]\")")) for r in ("onnxruntime", "openvino")]


def tps_system(kp: torch.Tensor) -> torch.Tensor:
    d = ((kp[..., :, None, :] - kp[..., None, :, :]) ** 2).sum(-1)
    p = torch.cat([kp, torch.ones_like(kp[..., :1])], -1)
    top = torch.cat([tps_kernel(d), p], -1)
    bottom = torch.cat([p.transpose(-1, -2), p.new_zeros(*p.shape[:-2], 3, 3)], -1)
    return torch.cat([top, bottom], -2) + TPS_RIDGE * torch.eye(kp.shape[-2] + 3, dtype=kp.dtype)


@pytest.mark.parametrize("spread", [1.0, 0.05, 0.0])
def test_householder_solve_is_as_exact_as_lu_in_float32(spread):
    """Spread keypoints, clustered ones (ill-conditioned) and five coincident points: relative error vs float64
    within 1e-5, or at most twice LU-with-pivoting's where float32 itself cannot do better."""
    g = torch.Generator().manual_seed(1)
    kp = torch.rand(256, 5, 2, generator=g) * 1.8 - 0.9
    kp = kp[:, :1] + spread * (kp - kp[:, :1])
    rhs = torch.cat([torch.rand(256, 5, 2, generator=g), torch.zeros(256, 3, 2)], -2)
    a = tps_system(kp)
    truth = torch.linalg.solve(a.double(), rhs.double())
    rel = lambda x: float((x.double() - truth).abs().max() / truth.abs().max())  # noqa: E731
    ours, lu = rel(householder_solve(a, rhs)), rel(torch.linalg.solve(a, rhs))
    assert ours <= max(2 * lu, 1e-5), (ours, lu)


def test_fold_batchnorm_keeps_the_keypoint_detector():
    model = make_tiny_model()
    for m in model.kp_detector.modules():              # non-trivial statistics, as trained weights have
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    import copy
    folded = fold_batchnorm(copy.deepcopy(model.kp_detector).eval())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert (folded(x) - model.kp_detector(x)).abs().max() < 1e-5


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = make_tiny_model()
    folder = tmp_path_factory.mktemp("export") / "tiny-onnx"
    export_graphs(model, str(folder), background=True)
    return model, folder


def test_export_contract(exported):
    model, folder = exported
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["image_size"] == 64 and manifest["num_tps"] == 2 and manifest["model_id"] == model.model_id
    assert set(manifest["graphs"]) == {"keypoints", "generator", "generator-bg", "avd"} == set(CONTRACT)
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST] + [f"{g}.onnx" for g in CONTRACT])
    for name, entry in manifest["graphs"].items():
        graph = onnx.load(str(folder / entry["file"]))
        onnx.checker.check_model(graph)
        assert [i.name for i in graph.graph.input] == entry["inputs"]
        assert [o.name for o in graph.graph.output] == entry["outputs"]
        assert {n.domain for n in graph.graph.node} <= {"", "ai.onnx"}          # standard ops only
        props = {p.key: p.value for p in graph.metadata_props}
        assert props["tpsmm_graph"] == name and props["tpsmm_model_id"] == model.model_id
    gen = onnx.load(str(folder / "generator.onnx"))
    assert gen.graph.input[2].type.tensor_type.shape.dim[0].dim_param == "B"


def test_readme_numpy_script_animates_like_the_pipeline(exported):
    """The README's numpy + onnxruntime script (relative mode) = the torch pipeline within 1e-4."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install \"tpsmm[onnxruntime]\")")
    model, folder = exported
    text = (ROOT / "README.md").read_text()
    code = re.search(r"<!-- onnx-script:begin -->\n```python\n(.*?)```\n<!-- onnx-script:end -->", text, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    g = torch.Generator().manual_seed(3)
    source, driving = torch.rand(64, 64, 3, generator=g), torch.rand(6, 64, 64, 3, generator=g)
    got = scope["animate"](str(folder), source.numpy(), driving.numpy(), relative=True)
    pipeline = AnimationPipeline(model, AnimationOptions(mode="relative", backend="torch", batch_size=4))
    want = torch.cat([o.frames for o in pipeline.run(source, driving)]).numpy()
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-4


FEATURES = {
    "relative-best-smooth-side": dict(mode="relative", reference_frame="best", smoothing="one-euro",
                                      side_by_side=True, draw_kp=True, with_motion=True),
    "standard-background": dict(mode="standard", background=True),
    "avd-hires": dict(mode="avd", output_size=(96, 112)),
}


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("feature", list(FEATURES))
def test_every_pipeline_feature_on_the_graph_backends(runtime, feature, exported):
    """Same frames (and motion outputs) as the torch path, float32, within 1e-4."""
    model, folder = exported
    g = torch.Generator().manual_seed(4)
    source, driving = torch.rand(1, 80, 72, 3, generator=g), torch.rand(5, 64, 64, 3, generator=g)

    def render(backend, **extra):
        opts = AnimationOptions(backend=backend, batch_size=2, **FEATURES[feature], **extra)
        return list(AnimationPipeline(model, opts).run(source, driving))

    want, got = render("torch"), render(runtime, graphs=str(folder))
    assert_same(got, want)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("feature", ["relative-best-smooth-side", "standard-background"])
def test_internal_graphs_encode_the_source_once(runtime, feature, exported):
    """The cache's entry (no ``graphs=``) runs ``source-cache`` once per clip and ``generator-cached[-bg]`` per batch:
    the same frames and motion outputs as the torch path within 1e-4; a user's export folder falls back."""
    model, folder = exported
    g = torch.Generator().manual_seed(5)
    source, driving = torch.rand(1, 72, 80, 3, generator=g), torch.rand(5, 64, 64, 3, generator=g)
    pipelines = {name: AnimationPipeline(model, AnimationOptions(backend=backend, batch_size=2, **extra,
                                                                 **FEATURES[feature]))
                 for name, backend, extra in [("torch", "torch", {}), ("cached", runtime, {}),
                                              ("export", runtime, dict(graphs=str(folder)))]}
    cached, export = pipelines["cached"].engine, pipelines["export"].engine
    assert cached.cached and not export.cached
    listed = json.loads((Path(cached.folder) / MANIFEST).read_text())["graphs"]
    assert set(listed) == set(CONTRACT) | set(INTERNAL)               # the tiny model has a background predictor
    assert listed["generator-cached"]["inputs"] == ["source", "source_small", "encoded_0", "encoded_1", "encoded_2",
                                                    "encoded_3", "source_keypoints", "driving_keypoints"]
    calls = []
    run_source = cached._source
    cached._source = lambda feeds: calls.append(1) or run_source(feeds)
    want = list(pipelines["torch"].run(source, driving))
    assert_same(list(pipelines["cached"].run(source, driving)), want)
    assert calls == [1]                                                # once per clip, not per batch
    assert_same(list(pipelines["export"].run(source, driving)), want)


def assert_same(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.frames.shape == b.frames.shape and (a.frames - b.frames).abs().max() < 1e-4
        if b.deformation is not None:
            assert (a.deformation - b.deformation).abs().max() < 1e-4
            assert (a.occlusion - b.occlusion).abs().max() < 1e-4
