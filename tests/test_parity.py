"""Parity with the reference implementation on the vox-256 fixture (see tests/fixtures/parity/README.md).

The official-layout checkpoint is written by the fixture's own ``build_checkpoint.py`` (with an optimizer
entry, as training files carry), converted with ``tpsmm convert`` and loaded with ``load_model``; every
expected tensor must match within 1e-4 (fp32, CPU).
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tpsmm.__main__ import main
from tpsmm.core import load_model
from tpsmm.core.animation.motion import relative_keypoints
from tpsmm.core.geometry.tps import tps_grid, tps_solve

TOL = 1e-4


@pytest.fixture(scope="module")
def parity(parity_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parity")
    official = tmp / "vox.pth.tar"
    subprocess.run([sys.executable, str(parity_dir / "build_checkpoint.py"), str(parity_dir / "vox-256"),
                    str(official), "--with-optimizer"], check=True, capture_output=True)
    converted = tmp / "vox.safetensors"
    assert main(["convert", str(official), str(converted)]) == 0
    model = load_model(str(converted), device="cpu", dtype=torch.float32)
    expected = load_file(str(parity_dir / "vox-256" / "expected.safetensors"))
    inputs = load_file(str(parity_dir / "vox-256" / "inputs.safetensors"))
    return model, expected, inputs


def _err(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


def test_pair_modules(parity):
    model, e, inp = parity
    src = inp["source"].permute(2, 0, 1)[None]
    drv = inp["driving"][1].permute(2, 0, 1)[None]
    with torch.no_grad():
        assert _err(model.detect(src), e["pair.kp_source"]) <= TOL
        assert _err(model.detect(drv), e["pair.kp_driving"]) <= TOL
        bg = model.bg_predictor(src, drv)
        assert _err(bg, e["pair.bg_param"]) <= TOL
        dm = model.dense_motion_network(src, e["pair.kp_driving"], e["pair.kp_source"], bg_param=e["pair.bg_param"])
        assert _err(dm.deformation, e["pair.deformation"]) <= TOL
        assert _err(dm.contribution_maps, e["pair.contribution_maps"]) <= TOL
        assert _err(dm.deformed_source, e["pair.deformed_source"]) <= TOL
        for i in range(4):
            assert _err(dm.occlusion[i], e[f"pair.occlusion_map.{i}"]) <= TOL
        gen = model.inpainting_network(src, dm, with_warped_maps=True)
        assert _err(gen.prediction, e["pair.prediction"]) <= TOL
        assert _err(gen.deformed, e["pair.deformed"]) <= TOL
        assert _err(gen.warped_encoder_maps[0], e["pair.warped_encoder_map.0"]) <= TOL
        assert _err(model.avd_network(e["pair.kp_source"], e["pair.kp_driving"]), e["pair.avd_kp"]) <= TOL


def test_tps_grid(parity):
    _, e, _ = parity
    grid = tps_grid(tps_solve(e["tps.kp_driving"], e["tps.kp_source"]), 32, 48)
    assert _err(grid, e["tps.grid"]) <= TOL


def test_relative_keypoints(parity):
    _, e, _ = parity
    new = relative_keypoints(e["relative.kp_source"], e["relative.kp_driving"], e["relative.kp_driving_initial"])
    assert _err(new, e["relative.kp_new"]) <= TOL


@pytest.mark.parametrize("mode", ["standard", "relative", "avd"])
def test_animation(parity, mode):
    model, e, inp = parity
    out = model.animate(inp["source"], inp["driving"], mode=mode)
    assert out.shape == (4, 256, 256, 3)
    assert _err(out, e[f"animation.{mode}"]) <= TOL

