"""The one animation pipeline: batching, two-pass reference frames, hooks, out-of-memory halving, layouts,
options, and that every entry point renders through it (the CLI and the nodes agree)."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_tiny_model
from tpsmm.core import AnimationOptions, AnimationPipeline, DrivingFrames, Hooks, ModelError, Motion
from tpsmm.core.media.crop import CropBox
from tpsmm.core.animation.engine import AnimationEngine

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return make_tiny_model()


@pytest.fixture(scope="module")
def clip():
    g = torch.Generator().manual_seed(5)
    return torch.rand(1, 64, 64, 3, generator=g), torch.rand(7, 64, 64, 3, generator=g)


def frames_of(pipeline, source, driving):
    return torch.cat([out.frames for out in pipeline.run(source, driving)])


def test_batched_equals_frame_by_frame(model, clip):
    """Batches of 3 (with a last partial batch) = the networks' own forward frame by frame."""
    source, driving = clip
    with torch.no_grad():
        src = model.prepare(source, name="s")
        kp_src, kp_drv = model.kp_detector(src), model.kp_detector(model.prepare(driving, name="d"))
        ref = torch.cat([model.generate_frames(src, kp_src, kp_drv[i:i + 1])[0].prediction for i in range(7)])
    batches = list(AnimationPipeline(model, AnimationOptions(mode="standard", batch_size=3)).run(source, driving))
    assert [b.start for b in batches] == [0, 3, 6] and [len(b.frames) for b in batches] == [3, 3, 1]
    out = torch.cat([b.frames for b in batches])
    assert out.shape == (7, 64, 64, 3) and out.dtype == torch.float32
    assert (out - ref.permute(0, 2, 3, 1)).abs().max() <= 1e-4


def test_two_pass_reference_equals_whole_clip_transfer(model, clip):
    """Reference frame -2 (two passes: keypoints, then frames) = estimate_motion + generate on the whole clip."""
    source, driving = clip
    streamed = frames_of(AnimationPipeline(model, AnimationOptions(reference_frame=-2, batch_size=2)), source,
                         DrivingFrames.from_tensor(driving))
    motion = model.estimate_motion(model.extract_keypoints(source), model.extract_keypoints(driving),
                                   reference_frame=5)
    whole, _ = model.generate(source, motion, batch_size=7)
    assert (streamed - whole).abs().max() <= 1e-4                  # batch 2 vs 7: float rounding only


def test_hooks_report_stages_progress_and_reference(model, clip):
    source, driving = clip
    seen = []
    hooks = Hooks(progress=lambda n: seen.append(("progress", n)), on_stage=lambda s, t: seen.append((s, t)),
                  on_reference=lambda i: seen.append(("reference", i)))
    list(AnimationPipeline(model, AnimationOptions(reference_frame="best", batch_size=4), hooks=hooks)
         .run(source, driving))
    assert seen[0] == ("keypoints", 7) and ("render", 7) in seen
    ref = [i for kind, i in seen if kind == "reference"]
    assert len(ref) == 1 and 0 <= ref[0] < 7
    render = seen[seen.index(("render", 7)) + 1:]
    assert sum(n for kind, n in render if kind == "progress") == 7


def test_interruption_stops_between_batches(model, clip):
    source, driving = clip
    calls = []

    def check():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    done = []
    with pytest.raises(KeyboardInterrupt):
        for out in AnimationPipeline(model, AnimationOptions(batch_size=2), hooks=Hooks(check_interrupt=check)) \
                .run(source, driving):
            done.append(out.start)
    assert done == [0, 2]


def test_out_of_memory_halves_the_batch_and_loses_nothing(model, clip, monkeypatch):
    source, driving = clip
    expected = frames_of(AnimationPipeline(model, AnimationOptions(batch_size=4)), source, driving)
    real, sizes = AnimationEngine.render_batch, []

    def tight(self, cache, kp_source, kp_driving, **kw):
        sizes.append(kp_driving.shape[0])
        if kp_driving.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, cache, kp_source, kp_driving, **kw)
    monkeypatch.setattr(AnimationEngine, "render_batch", tight)
    pipeline = AnimationPipeline(model, AnimationOptions(batch_size=4))
    got = frames_of(pipeline, source, driving)
    assert pipeline.batch_size == 1 and sizes[:3] == [4, 2, 1]
    assert got.shape == expected.shape and (got - expected).abs().max() <= 1e-4   # batch 1 vs 4: rounding only


def test_layouts_crop_and_high_resolution(model):
    g = torch.Generator().manual_seed(1)
    photo, driving = torch.rand(90, 120, 3, generator=g), torch.rand(3, 48, 48, 3, generator=g)
    box = CropBox(x=30, y=10, w=80, h=70)
    options = AnimationOptions(crop=box, feather=0, extra_views=("side-by-side+kp", "result+kp"), with_motion=True)
    out = next(AnimationPipeline(model, options).run(photo, driving))
    assert out.frames.shape == (2, 90, 120, 3)                                     # the whole photo back
    outside = torch.ones(90, 120, dtype=torch.bool)
    outside[10:80, 30:110] = False
    assert torch.equal(out.frames[:, outside], photo[outside].expand(2, -1, -1))  # untouched outside the box
    assert out.views["side-by-side+kp"].shape == (2, 90, 120 + 90 + 120, 3)
    assert not torch.equal(out.views["result+kp"], out.frames)                     # keypoints drawn
    assert out.deformation.shape[0] == out.occlusion.shape[0] == 2 and out.occlusion.shape[1:] == (64, 64)
    big = next(AnimationPipeline(model, AnimationOptions(output_size=(128, 96))).run(photo, driving))
    assert big.frames.shape == (2, 128, 96, 3)


def test_driving_crop_is_what_the_model_sees(model, clip):
    source, driving = clip
    box = CropBox(x=8, y=4, w=40, h=40)
    cropped = frames_of(AnimationPipeline(model, AnimationOptions(driving_crop=box)), source, driving)
    by_hand = frames_of(AnimationPipeline(model, AnimationOptions()), source, driving[:, 4:44, 8:48].contiguous())
    assert torch.equal(cropped, by_hand)


@pytest.mark.parametrize("field, value, message", [
    ("mode", "wiggle", "mode: expected one of"), ("reference_frame", 1.5, "reference_frame: expected a whole"),
    ("strength", float("nan"), "strength: expected a finite"), ("smoothing", "kalman", "smoothing: expected"),
    ("smoothing_strength", 1.0, r"smoothing_strength: expected a value in \[0, 1\)"),
    ("feather", -1, "feather"), ("output_size", (0, 10), "output_size"), ("upscale", "nearest", "upscale"),
    ("extra_views", ("thumbnail",), "extra_views"), ("batch_size", 0, "batch_size"), ("dtype", "int8", "dtype"),
])
def test_options_are_checked_when_made(field, value, message):
    with pytest.raises(ValueError, match=message):
        AnimationOptions(**{field: value})
    with pytest.raises(ValueError, match="^strength: applies to mode 'relative' only"):
        AnimationOptions(mode="standard", strength=2.0)


def test_pipeline_refuses_what_the_model_cannot_do(model, clip):
    no_avd = make_tiny_model()
    no_avd.avd_network = no_avd.bg_predictor = None
    with pytest.raises(ModelError, match="no AVD network"):
        AnimationPipeline(no_avd, AnimationOptions(mode="avd"))
    with pytest.raises(ModelError, match="no background motion predictor"):
        AnimationPipeline(no_avd, AnimationOptions(background=True))
    motion = Motion(kp_source=torch.zeros(1, 10, 2), kp_driving=torch.zeros(2, 10, 2), mode="standard", model_id="x")
    with pytest.raises(ModelError, match="another model"):
        list(AnimationPipeline(model, AnimationOptions(mode="standard")).generate(clip[0], motion))


def test_driving_frames_from_a_video_stream_twice(tmp_path):
    from tpsmm.core.media.video import VideoWriter

    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    with VideoWriter(tmp_path / "clip", fps=12) as w:                          # a PNG folder: lossless
        w.write(frames)
    with DrivingFrames.from_video(tmp_path / "clip") as clip:
        assert (clip.size, clip.frame_count) == ((32, 48), 5)        # Size(height, width)
        for _ in range(2):
            got = torch.cat(list(clip.batches(2)))
            assert torch.equal(got, torch.from_numpy(frames).float() / 255)


# Rendering frames means calling one of these: the engine (built, or asked for a batch), the networks container's
# one-pass generate_frames, or the generator network itself.
RENDERERS = {"AnimationEngine", "render_batch", "generate_frames", "inpainting_network"}
# Every module that renders, and why that is no second render loop.
RENDERING_MODULES = {
    "core/animation/pipeline.py": "THE render loop: batches, hooks, out-of-memory halving, layouts",
    "core/model/container.py": "generate_frames: one dense-motion + inpainting pass, no loop",
    "trainer/batch_losses.py": "the training forward: one batch, to compute the losses",
    "trainer/avd_train.py": "one batch of pictures of the AVD keypoints",
    "benchmarks/naive.py": "the release's per-frame loop, timed as the baseline the pipeline is compared to",
    "benchmarks/gpu_check.py": "times the engine's networks on one batch (GPU figures): no loop over a clip",
    "core/animation/engine.py": "make_engine builds the torch engine the pipeline drives; it renders nothing itself",
}
CODE = ("core", "trainer", "tpsmm_nodes", "render", "benchmarks", "tools")


def renders(text: str) -> bool:
    """Whether the source ``text`` calls a frame renderer (:data:`RENDERERS`), by name or as an attribute."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in RENDERERS:
                return True
    return False


def test_the_pipeline_is_the_only_render_loop():
    """Every module of the repository that renders frames is listed with its reason: the pipeline is the one loop
    (the CLI, the nodes, render, demo and eval hold none); a new caller fails until it goes through the pipeline."""
    sources = [p for d in CODE for p in (ROOT / d).rglob("*.py")] + list(ROOT.glob("*.py"))
    found = sorted(str(p.relative_to(ROOT)) for p in sources if renders(p.read_text(encoding="utf-8")))
    assert found == sorted(RENDERING_MODULES)


@pytest.mark.parametrize("text, expected", [
    ("for b in batches:\n    out.append(engine.render_batch(cache, kp, b))\n", True),
    ("frames = [model.inpainting_network(src, m) for m in motions]\n", True),
    ("from tpsmm.core.animation.engine import AnimationEngine\nengine = AnimationEngine(model)\n", True),
    ("gen, motion = networks.generate_frames(src, kp_s, kp_d)\n", True),
    ("for out in pipeline.run(source, clip):\n    writer.write(out.frames)\n", False),
    ("def render_batch(self):\n    return self.inpainting_network\n", False),
])
def test_the_render_check_sees_every_renderer(text, expected):
    assert renders(text) is expected
