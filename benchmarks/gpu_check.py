"""GPU figures of the renderer (vox-256 architecture, 256², random weights): one script for one short lease.

Rows (each printed as one JSON line and collected in ``--json``):

* ``torch-{fp32,fp16,bf16}-b{N}``: :class:`~tpsmm.core.animation.engine.AnimationEngine` (channels_last,
  autocast) — keypoints of the batch, dense motion and inpainting on the cached source, synchronised;
* ``torch-{dtype}-b{N}-graph``: the same batch replayed as a captured CUDA graph (launch overhead removed);
* ``torch-{dtype}-b{N}-compile``: ``torch.compile`` of the renderer (when ``--compile``);
* ``pipeline-{dtype}-b{N}``: the whole :class:`~tpsmm.core.AnimationPipeline` (frames in user layout from the
  host, crop/compose, frames back on the host), as every entry point runs it;
* ``ort-{provider}-b{N}``: the exported ``generator.onnx`` on ONNX Runtime's CUDA / TensorRT providers,
  when this onnxruntime has them (else one row saying which providers it has).

Errors vs float32 are max abs and PSNR of the rendered frames. ``--device cpu --size 64 --tiny`` is a
smoke test of the script itself.

    python benchmarks/gpu_check.py --json out.json [--device cuda] [--batches 1,64] [--compile]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import clip_psnr  # noqa: E402


def timed(fn, *, device, warmup=2, reps=5):
    """Best-of-``reps`` seconds of ``fn()`` (synchronised on CUDA)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def forward(engine, cache, kp_src, frames: torch.Tensor) -> torch.Tensor:
    """One batch through the engine's networks (keypoints, dense motion, inpainting): the timed unit. Not a render
    loop — frames are rendered only by the pipeline (``pipeline-*`` rows)."""
    kp = engine.detect(frames)
    return engine._core(cache, kp_src.expand(kp.shape[0], -1, -1), kp, None)[0].prediction


def build(args, device):
    from tpsmm.core.animation.animator import TPSMM
    from tpsmm.core.model.config import ModelConfig, get_preset

    torch.manual_seed(0)
    cfg = get_preset("vox-256").model
    if args.tiny:
        cfg = ModelConfig(num_tps=2, gen_block_expansion=8, gen_max_features=32, dm_block_expansion=8,
                          dm_max_features=32, dm_num_blocks=3, image_size=args.size, backbone="small")
    return TPSMM(cfg, with_bg=False).eval().to(device)


def engine_rows(model, args, device, emit):
    from tpsmm.core.animation.engine import AnimationEngine

    s = model.config.image_size
    g = torch.Generator().manual_seed(1)
    src = torch.rand(1, 3, s, s, generator=g).to(device)
    ref = {}
    for b in args.batches:
        drv = torch.rand(b, 3, s, s, generator=g).to(device)
        for name in args.dtypes:
            dtype = getattr(torch, name.replace("fp", "float").replace("bf16", "bfloat16"))
            eng = AnimationEngine(model, batch_size=b, dtype=dtype, channels_last=True)
            kp_src, cache = eng.detect(src), eng.cache_source(src)
            step = lambda: forward(eng, cache, kp_src, drv)  # noqa: E731
            out = step()
            ref.setdefault(b, out.float())
            sec = timed(step, device=device)
            row = dict(row=f"torch-{name}-b{b}", ms_per_frame=1000 * sec / b, frames_per_s=b / sec,
                       max_abs=float((out.float() - ref[b]).abs().max()), psnr=clip_psnr(out, ref[b]))
            emit(row)
            if args.compile and name == "bf16" and b == max(args.batches):     # one compile: it is slow to build
                try:
                    t0 = time.perf_counter()
                    ceng = AnimationEngine(model, batch_size=b, dtype=dtype, channels_last=True, compile=True)
                    cstep = lambda: forward(ceng, cache, kp_src, drv)  # noqa: E731
                    out = cstep()
                    first = time.perf_counter() - t0
                    sec = timed(cstep, device=device)
                    emit(dict(row=f"torch-{name}-b{b}-compile", ms_per_frame=1000 * sec / b, frames_per_s=b / sec,
                              compile_s=first, max_abs=float((out.float() - ref[b]).abs().max())))
                except Exception as exc:
                    emit(dict(row=f"torch-{name}-b{b}-compile", error=f"{type(exc).__name__}: {str(exc)[:200]}"))
            if device.type == "cuda" and args.graphs:
                try:
                    static = drv.clone()
                    stream = torch.cuda.Stream()
                    stream.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(stream):
                        for _ in range(2):
                            forward(eng, cache, kp_src, static)
                    torch.cuda.current_stream().wait_stream(stream)
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph):
                        captured = forward(eng, cache, kp_src, static)
                    sec = timed(graph.replay, device=device)
                    emit(dict(row=f"torch-{name}-b{b}-graph", ms_per_frame=1000 * sec / b, frames_per_s=b / sec,
                              max_abs=float((captured.float() - ref[b]).abs().max())))
                except Exception as exc:  # report, keep going
                    emit(dict(row=f"torch-{name}-b{b}-graph", error=f"{type(exc).__name__}: {str(exc)[:200]}"))


def pipeline_rows(model, args, device, emit):
    from tpsmm.core import AnimationOptions, AnimationPipeline

    s = model.config.image_size
    g = torch.Generator().manual_seed(2)
    src, drv = torch.rand(1, s, s, 3, generator=g), torch.rand(args.frames, s, s, 3, generator=g)
    for name in ("bf16", "fp16"):
        for b in args.batches:
            p = AnimationPipeline(model, AnimationOptions(batch_size=b, dtype=name, backend="torch"))
            run = lambda: [o.frames for o in p.run(src, drv)]  # noqa: E731
            sec = timed(run, device=device, warmup=1, reps=3)
            emit(dict(row=f"pipeline-{name}-b{b}", frames=args.frames, ms_per_frame=1000 * sec / args.frames,
                      frames_per_s=args.frames / sec))


def ort_rows(model, args, device, emit):
    try:
        import onnxruntime as ort
    except ImportError:
        emit(dict(row="ort", error="onnxruntime not installed"))
        return
    providers = ort.get_available_providers()
    emit(dict(row="ort-providers", providers=providers, version=ort.__version__))
    wanted = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in providers]
    if not wanted:
        return
    import numpy as np
    from tpsmm.core.backends.export import export_graphs

    folder = os.path.join(tempfile.mkdtemp(), "graphs")
    t0 = time.perf_counter()
    export_graphs(model.cpu(), folder)
    model.to(device)
    emit(dict(row="ort-export", seconds=time.perf_counter() - t0))
    s, n = model.config.image_size, 5 * model.config.num_tps
    for prov in wanted:
        for b in args.batches:
            try:
                sess = ort.InferenceSession(os.path.join(folder, "generator.onnx"), providers=[prov])
                feeds = {"source": np.random.rand(1, 3, s, s).astype(np.float32),
                         "source_keypoints": (np.random.rand(1, n, 2) - 0.5).astype(np.float32),
                         "driving_keypoints": (np.random.rand(b, n, 2) - 0.5).astype(np.float32)}
                sec = timed(lambda: sess.run(["frames"], feeds), device=torch.device("cpu"), warmup=2, reps=5)
                emit(dict(row=f"ort-{prov.replace('ExecutionProvider', '').lower()}-b{b}",
                          ms_per_frame=1000 * sec / b, frames_per_s=b / sec))
            except Exception as exc:
                emit(dict(row=f"ort-{prov}-b{b}", error=f"{type(exc).__name__}: {str(exc)[:200]}"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", required=True)
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--dtypes", default="fp32,fp16,bf16")
    ap.add_argument("--frames", type=int, default=256, help="pipeline rows: driving frames")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--tiny", action="store_true", help="tiny architecture (smoke test of the script)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-graphs", dest="graphs", action="store_false")
    ap.add_argument("--parts", default="engine,pipeline,ort")
    args = ap.parse_args()
    args.batches = [int(v) for v in args.batches.split(",")]
    args.dtypes = args.dtypes.split(",")
    device = torch.device(args.device)
    rows = []

    def emit(row):
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                       "torch": torch.__version__, "rows": rows}, f, indent=1)

    model = build(args, device)
    parts = args.parts.split(",")
    for part, fn in (("engine", engine_rows), ("pipeline", pipeline_rows), ("ort", ort_rows)):
        if part in parts:
            try:
                fn(model, args, device, emit)
            except Exception as exc:
                emit(dict(row=part, error=f"{type(exc).__name__}: {str(exc)[:300]}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
