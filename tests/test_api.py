"""The public Python API: input conversion, keypoints/motion/generation steps, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_tiny_model
from tpsmm.core import InputError, ModelError


@pytest.fixture(scope="module")
def model():
    return make_tiny_model()


def test_animate_shapes_and_range(model):
    out = model.animate(torch.rand(64, 64, 3), torch.rand(4, 64, 64, 3), mode="relative")
    assert out.shape == (4, 64, 64, 3) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1


def test_source_batch_of_one_and_numpy(model):
    src = np.random.rand(1, 64, 64, 3).astype(np.float32)
    drv = np.random.rand(2, 64, 64, 3).astype(np.float32)
    assert model.animate(src, drv, mode="standard").shape == (2, 64, 64, 3)


def test_grayscale_and_rgba_converted(model):
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(64, 64, 3, generator=g)
    drv = torch.rand(2, 64, 64, 3, generator=g)
    rgba = torch.cat([rgb, torch.ones(64, 64, 1)], dim=-1)
    assert torch.equal(model.animate(rgba, drv, mode="standard"), model.animate(rgb, drv, mode="standard"))
    gray = torch.rand(64, 64, 1, generator=g)
    assert torch.equal(model.animate(gray, drv, mode="standard"),
                       model.animate(gray.expand(64, 64, 3), drv, mode="standard"))


def test_different_sizes_are_resized(model):
    """Policy: every frame is resized to the model size (antialiased bilinear)."""
    out = model.animate(torch.rand(100, 80, 3), torch.rand(2, 48, 48, 3), mode="relative")
    assert out.shape == (2, 64, 64, 3)


@pytest.mark.parametrize("bad, match", [
    (torch.rand(64, 64), "expected \\[H,W,C\\] or \\[B,H,W,C\\]"),
    (torch.rand(64, 64, 2), "expected 1, 3 or 4 channels"),
    (torch.rand(64, 64, 3) * 2, "values must lie in \\[0,1\\]"),
    (torch.randint(0, 255, (64, 64, 3), dtype=torch.uint8), "expected float values.*divide by 255"),
    (torch.rand(2, 64, 64, 3), "expected one image"),
])
def test_bad_source(model, bad, match):
    with pytest.raises(InputError, match="source: " + match):
        model.animate(bad, torch.rand(2, 64, 64, 3))


def test_bad_driving(model):
    with pytest.raises(InputError, match="driving: the image batch is empty"):
        model.animate(torch.rand(64, 64, 3), torch.rand(0, 64, 64, 3))
    with pytest.raises(InputError, match="driving: values must lie"):
        model.animate(torch.rand(64, 64, 3), torch.full((2, 64, 64, 3), float("nan")))


def test_steps_compose_to_animate(model):
    src, drv = torch.rand(64, 64, 3), torch.rand(3, 64, 64, 3)
    kp_s = model.extract_keypoints(src)
    kp_d = model.extract_keypoints(drv)
    assert kp_s.value.shape == (1, 10, 2) and len(kp_d) == 3
    motion = model.estimate_motion(kp_s, kp_d, mode="relative")
    frames, occ = model.generate(src, motion, batch_size=2)
    assert frames.shape == (3, 64, 64, 3) and occ.shape == (3, 64, 64)
    assert torch.allclose(frames, model.animate(src, drv, mode="relative"), atol=1e-5)


def test_relative_first_frame_keeps_source_keypoints(model):
    src, drv = torch.rand(64, 64, 3), torch.rand(3, 64, 64, 3)
    motion = model.estimate_motion(model.extract_keypoints(src), model.extract_keypoints(drv), mode="relative")
    assert torch.allclose(motion.kp_driving[0], motion.kp_source[0])
    best = model.estimate_motion(model.extract_keypoints(src), model.extract_keypoints(drv), mode="relative",
                                 reference_frame="best")
    assert best.kp_driving.shape == (3, 10, 2)


def test_foreign_keypoints_refused(model):
    other = make_tiny_model(seed=1)
    kp = other.extract_keypoints(torch.rand(64, 64, 3))
    with pytest.raises(ModelError, match="another model"):
        model.estimate_motion(kp, model.extract_keypoints(torch.rand(2, 64, 64, 3)))


def test_bad_mode_and_reference(model):
    kp_s = model.extract_keypoints(torch.rand(64, 64, 3))
    kp_d = model.extract_keypoints(torch.rand(2, 64, 64, 3))
    with pytest.raises(ModelError, match="mode"):
        model.estimate_motion(kp_s, kp_d, mode="wiggle")
    with pytest.raises(ModelError, match="reference_frame: 5 is outside"):
        model.estimate_motion(kp_s, kp_d, reference_frame=5)
