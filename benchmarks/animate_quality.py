"""Quality rows of ``benchmarks/animate.py``: flow-based high resolution and the bundled demo model."""
from __future__ import annotations

import os

import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hires_case import gradient_energy, psnr as psnr_b, synthetic_case  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def hires_rows() -> list[str]:
    from tpsmm.core.animation.hires import render_hires, upscale_frames

    c = synthetic_case(256, 1024)
    hi = render_hires(c["source"], c["generated"], c["deformation"], c["occlusion"], size=1024)
    bic = upscale_frames(c["generated"], 1024)
    ge = lambda x: float(gradient_energy(x)) * 255 ** 2  # noqa: E731
    return [f"| flow (ours) | {float(psnr_b(hi, c['truth'], border=16)):.2f} | {ge(hi):.1f} |",
            f"| bicubic | {float(psnr_b(bic, c['truth'], border=16)):.2f} | {ge(bic):.1f} |",
            f"| ground truth | – | {ge(c['truth']):.1f} |"]


def demo_rows() -> list[str]:
    """The bundled demo model and clip (``assets/demo``): bfloat16 vs float32 (where bf16 is native), and flow vs
    bicubic upscaling in a reconstruction (source = driving frame 0, ground truth = the 256² driving frames)."""
    import numpy as np

    from tpsmm.core import AnimationOptions, AnimationPipeline, load_model
    from tpsmm.core.media.video import VideoReader
    from tpsmm.core.device import cpu_has_native_bf16

    demo = os.path.join(HERE, "..", "assets", "demo")
    model = load_model(os.path.join(demo, "model.safetensors"))
    truth = torch.from_numpy(np.stack(list(VideoReader(os.path.join(demo, "driving.mp4"))))).float().div(255)
    size = tuple(truth.shape[1:3])

    def render(**kw):
        options = AnimationOptions(mode="standard", batch_size=8, **kw)
        frames = torch.cat([o.frames for o in AnimationPipeline(model, options).run(truth[0], truth)])
        return frames.permute(0, 3, 1, 2)

    ge = lambda x: float(gradient_energy(x).mean()) * 255 ** 2  # noqa: E731
    t = truth.permute(0, 3, 1, 2)
    hi, bic = render(output_size=size, upscale="flow"), render(output_size=size, upscale="bicubic")
    rows = [f"| flow (ours) | {float(psnr_b(hi, t).mean()):.2f} | {ge(hi):.1f} |",
            f"| bicubic | {float(psnr_b(bic, t).mean()):.2f} | {ge(bic):.1f} |",
            f"| driving frames | – | {ge(t):.1f} |"]
    head = f"Demo model ({model.config.image_size}² model, {truth.shape[0]} frames): "
    if cpu_has_native_bf16():
        p16 = psnr_b(render(dtype="bfloat16", channels_last=True), render())
        head += f"bfloat16 vs float32 PSNR {float(p16.mean()):.1f} dB mean, {float(p16.min()):.1f} dB worst frame."
    else:
        head += "bfloat16 not measured (this CPU has no native bfloat16; the pipeline runs float32)."
    return [head, "", "| upscaling to 256² | PSNR vs driving frames (dB) | gradient energy |", "|---|---|---|", *rows]
