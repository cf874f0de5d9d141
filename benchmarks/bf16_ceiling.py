"""The fastest a bfloat16 backend could render on this CPU, measured: is issue #19's 6x reachable here?

The vox-256 architecture spends nearly all of its multiply-adds in convolutions, so a frame can never take
less than *its convolution multiply-adds / the CPU's best bfloat16 convolution rate*. This script measures:

* the convolution multiply-adds per frame of the release loop (:mod:`naive`: keypoints, source encoder, dense
  motion, decoder) and of the pipeline (driving keypoints, dense motion and the decoder of the CPU inference
  copy with its sub-pixel upsampling blocks; the source is encoded once per clip);
* the convolution rate of the decoder's biggest convolution (512→512, 3×3 at 64², batch 2) in float32 and
  bfloat16: torch channels_last, and OpenVINO (float32, and bf16 as :mod:`tpsmm.core.backends.mixed_precision`
  runs it) when installed;
* the release loop's own time per frame (best of two runs over ``--frames`` frames, after a warm-up).

*Ceiling* = release loop ms/frame ÷ (pipeline multiply-adds ÷ best bf16 rate): the speed-up a bf16 backend would
reach if every other op were free. Compare it with the ``openvino-bf16`` row of ``benchmarks/animate.py``.

    python benchmarks/bf16_ceiling.py             # writes the bf16-ceiling section of RESULTS.md
"""
from __future__ import annotations

import argparse
import copy
import datetime
import os
import sys
import tempfile
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from animate_inputs import make_inputs  # noqa: E402
from machine import machine  # noqa: E402
from naive import naive_loop  # noqa: E402
from results import write_section  # noqa: E402


def conv_macs(fn, *modules: nn.Module) -> int:
    """Multiply-adds of every convolution in ``modules`` while ``fn()`` runs: each ``nn.Conv2d``, and each
    sub-pixel block's 2×2 phase convolution over its padded ``[H+1, W+1]`` grid."""
    from tpsmm.core.networks.subpixel import SubpixelUpConv

    total = [0]

    def count(conv, inputs, out):
        if isinstance(conv, SubpixelUpConv):
            b, cin, h, w = inputs[0].shape
            total[0] += b * conv.weight.shape[0] * (h + 1) * (w + 1) * cin * 4
        else:
            total[0] += out.numel() * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
    hooks = [m.register_forward_hook(count) for mod in modules for m in mod.modules()
             if isinstance(m, (nn.Conv2d, SubpixelUpConv))]
    try:
        with torch.no_grad():
            fn()
    finally:
        for h in hooks:
            h.remove()
    return total[0]


def best_seconds(fn, reps: int = 5) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def conv_rates(tmp: str) -> dict[str, float]:
    """GMAC/s of one 512→512 3×3 convolution at 64², batch 2, per runtime and precision."""
    from tpsmm.core.device import cpu_has_native_bf16

    conv, x = nn.Conv2d(512, 512, 3, padding=1).eval(), torch.randn(2, 512, 64, 64)
    macs = 2 * 512 * 64 * 64 * 512 * 9
    precisions = {"fp32": torch.float32}
    if cpu_has_native_bf16():                          # emulated bf16 is ~100x slower, and tpsmm never uses it
        precisions["bf16"] = torch.bfloat16
    rates = {}
    with torch.no_grad():
        for label, dtype in precisions.items():
            c = copy.deepcopy(conv).to(dtype=dtype, memory_format=torch.channels_last)
            xc = x.to(dtype).contiguous(memory_format=torch.channels_last)
            rates[f"torch {label}"] = macs / best_seconds(lambda: c(xc)) / 1e9  # noqa: B023
    try:
        import openvino as ov
    except ImportError:
        return rates
    from tpsmm.core.backends.mixed_precision import bf16_trunks

    path = os.path.join(tmp, "conv.onnx")
    torch.onnx.export(nn.Sequential(conv, nn.ReLU(), nn.Conv2d(512, 512, 1)), x, path, dynamo=False)
    core = ov.Core()
    for label in precisions:
        model = core.read_model(path)
        if label == "bf16":
            bf16_trunks(ov, model)
        request = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True}
                                     ).create_infer_request()
        request.infer({0: x.numpy()})                  # warm-up
        times = []
        for _ in range(5):                             # the convolution's own time, from OpenVINO's profile
            request.infer({0: x.numpy()})
            times.append(sum(p.real_time.total_seconds() for p in request.profiling_info
                             if p.node_name.startswith("/0/")))
        rates[f"openvino {label}"] = macs / min(times) / 1e9
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=4, help="release-loop frames timed (default 4)")
    p.add_argument("--no-write", action="store_true", help="print the section instead of updating RESULTS.md")
    args = p.parse_args()
    from tpsmm.core.animation.engine import inference_copy
    from tpsmm.core.model.config import ModelConfig
    from tpsmm.core.model.container import TPSMMNetworks

    torch.manual_seed(0)
    model = TPSMMNetworks(ModelConfig()).eval()
    clip = make_inputs(256, args.frames + 1)
    source, driving = clip["source"], clip["driving"]
    frame = driving[1:2]
    # per frame of the release loop: its cost on two frames minus its cost on one (the source's and the reference
    # frame's keypoints are once per clip)
    release = (conv_macs(lambda: naive_loop(model, source, driving[:2]), model)
               - conv_macs(lambda: naive_loop(model, source, driving[:1]), model))
    dm = inference_copy(model.dense_motion_network, dtype=torch.float32, channels_last=False)
    inp = inference_copy(model.inpainting_network, dtype=torch.float32, channels_last=False)
    with torch.no_grad():
        kp_source, kp_frame, encoded = model.kp_detector(source), model.kp_detector(frame), inp.encode(source)
    pipeline = conv_macs(lambda: (model.kp_detector(frame),
                                  inp(source, dm(source, kp_frame, kp_source), encoded=encoded)), model, dm, inp)
    naive_ms = best_seconds(lambda: naive_loop(model, source, driving[1:]), reps=2) / args.frames * 1e3
    with tempfile.TemporaryDirectory() as tmp:
        rates = conv_rates(tmp)
    best = max((k for k in rates if k.endswith("bf16")), key=rates.get, default=None)
    if best is None:
        best = max(rates, key=rates.get)
        print("this CPU has no native bfloat16 (AVX512-BF16 or AMX): tpsmm runs bf16 requests in float32 here, "
              "so the ceiling below is float32's", file=sys.stderr)
    floor_ms = pipeline / rates[best] / 1e6
    lines = [f"### bfloat16 ceiling on this CPU ({datetime.date.today().isoformat()}, "
             "`python benchmarks/bf16_ceiling.py`)", "", f"Machine: {machine()}.", "",
             f"Convolution multiply-adds per frame: release loop {release / 1e9:.1f} G; "
             f"pipeline {pipeline / 1e9:.1f} G (source encoded once per clip, sub-pixel upsampling blocks). "
             f"Release loop (torch float32, batch 1): {naive_ms:.0f} ms/frame = {release / naive_ms / 1e6:.0f} GMAC/s.",
             "", "| 512→512 3×3 convolution at 64², batch 2 | GMAC/s |", "|---|---|",
             *[f"| {k} | {v:.0f} |" for k, v in rates.items()], "",
             f"Ceiling: {naive_ms:.0f} ms ÷ ({pipeline / 1e9:.1f} G ÷ {rates[best]:.0f} GMAC/s = {floor_ms:.0f} ms) "
             f"= **{naive_ms / floor_ms:.2f}x** the release loop with {best}, if nothing but these convolutions "
             "took time (issue #19 asks 6x)."]
    print(write_section("bf16-ceiling", "\n".join(lines), dry=args.no_write))


if __name__ == "__main__":
    main()
