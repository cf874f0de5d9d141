"""Exported graphs of every preset architecture (random weights; mgif without background predictor) match the torch
path in float32 within 1e-4, run by ONNX Runtime and by OpenVINO with the float32 hint; the batch is dynamic.

(With keypoints moved off the detector's layout by random noise, random-weight generators amplify the
float32 rounding of either solve past 1e-4 — the graph's deformation is then the closer one to float64:
1.0e-6 against torch's 4.0e-6 on mgif-256.)"""
from __future__ import annotations

import pytest
import torch

from tpsmm.core.backends.export import export_graphs
from tpsmm.core.backends.runtimes import GraphSession, installed
from tpsmm.core.model.config import PRESETS
from tpsmm.core.model.container import TPSMMNetworks

pytest.importorskip("onnx", reason="onnx is not installed (pip install \"tpsmm[export]\")")
RUNTIMES = [r for r in ("onnxruntime", "openvino") if installed(r)]
pytestmark = pytest.mark.skipif(not RUNTIMES, reason="neither onnxruntime nor openvino is installed "
                                                      "(pip install \"tpsmm[onnxruntime]\" \"tpsmm[openvino]\")")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_graphs_match_torch_float32(preset, tmp_path):
    torch.manual_seed(0)
    model = TPSMMNetworks(PRESETS[preset].model, with_bg=False, with_avd=False).eval()
    s = model.config.image_size
    export_graphs(model, str(tmp_path / "g"))
    g = torch.Generator().manual_seed(1)
    source, frames = torch.rand(1, 3, s, s, generator=g), torch.rand(3, 3, s, s, generator=g)
    with torch.no_grad():
        kp_src, kp_drv = model.detect(source), model.detect(frames)     # the layouts the pipeline feeds the graph
        motion = model.dense_motion_network(source, kp_drv, kp_src.expand(3, -1, -1))
        want = model.inpainting_network(source, motion).prediction
    for runtime in RUNTIMES:
        run = lambda name: GraphSession(runtime, str(tmp_path / "g" / f"{name}.onnx"),  # noqa: E731
                                        device=torch.device("cpu"), dtype=torch.float32)
        kp = torch.from_numpy(run("keypoints")({"image": frames.numpy()})[0])
        assert (kp - model.detect(frames)).abs().max() < 1e-4, runtime
        gen = run("generator")
        for b in (1, 3):                                   # exported at batch 2: the batch is dynamic
            out = gen({"source": source.numpy(), "source_keypoints": kp_src.numpy(),
                       "driving_keypoints": kp_drv[:b].numpy()})
            assert (torch.from_numpy(out[0]) - want[:b]).abs().max() < 1e-4, (runtime, b)
            assert (torch.from_numpy(out[2]) - motion.deformation[:b]).abs().max() < 1e-4, (runtime, b)
