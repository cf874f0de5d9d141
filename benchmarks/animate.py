"""Benchmark of the animation pipeline against the naive per-frame path, plus hires and RSS checks.

Paths (each runs in its own subprocess, on the same inputs, so timings and peak memory are separate):

* ``naive``: the reference's loop rebuilt from our modules — batch 1, float32, the source re-encoded
  (downscale + inpainting encoder) for every frame, one device→host copy per frame.
* ``<backend>-<dtype>``: :class:`tpsmm.core.AnimationPipeline`, what every entry point runs — batches, cached
  source, frames handed back in user layout — on each backend (``torch`` with optional channels_last and
  bfloat16/float16 autocast; ``onnxruntime`` and ``openvino`` when installed, their graphs exported before
  the timed run, untimed).
  On a CPU without native bfloat16 the pipeline runs bfloat16 requests in float32 (emulated bf16 is
  ~100x slower), so the bf16 row is left out there.

Both include driving keypoint detection and relative motion transfer. Outputs are compared with the
naive path (max abs difference, PSNR). Model: the vox-256 architecture at 256², random weights unless
``--checkpoint`` is given. Results go to ``benchmarks/RESULTS.md`` (the section between the
``animate`` markers; the rest of the file is kept).

    python benchmarks/animate.py                  # full CPU run (32 frames, batch 2)
    python benchmarks/animate.py --quick          # 8 frames, smoke check
    python benchmarks/animate.py --device cuda    # GPU paths (fp32 / fp16 / bf16, batch 1 and batched)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import animate_quality as quality  # noqa: E402
from animate_inputs import make_inputs, random_checkpoint  # noqa: E402
from animate_memory import rss_rows  # noqa: E402
from machine import machine  # noqa: E402
from naive import naive_loop  # noqa: E402
from results import clip_psnr, write_section  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def paths_for(device: str, batch: int) -> dict[str, dict]:
    """Name -> pipeline settings (``None`` = the naive path): one row per backend x dtype."""
    from tpsmm.core.backends.runtimes import installed
    from tpsmm.core.device import cpu_has_native_bf16

    if device == "cpu":
        paths = {"naive-fp32": None,
                 "torch-fp32": dict(batch=batch, dtype="float32", channels_last=False),
                 "torch-fp32-cl": dict(batch=batch, dtype="float32", channels_last=True)}
        if cpu_has_native_bf16():
            paths["torch-bf16-cl"] = dict(batch=batch, dtype="bfloat16", channels_last=True)
        for runtime in ("onnxruntime", "openvino"):
            if installed(runtime):
                paths[f"{runtime}-fp32"] = dict(batch=batch, dtype="float32", backend=runtime)
        if installed("openvino") and cpu_has_native_bf16():
            paths["openvino-bf16"] = dict(batch=batch, dtype="bfloat16", backend="openvino")
        return paths
    return {"naive-fp32": None,
            "torch-fp32": dict(batch=batch, dtype="float32", channels_last=True),
            "torch-fp16": dict(batch=batch, dtype="float16", channels_last=True),
            "torch-bf16": dict(batch=batch, dtype="bfloat16", channels_last=True),
            "torch-fp16-b1": dict(batch=1, dtype="float16", channels_last=True),
            "torch-bf16-b1": dict(batch=1, dtype="bfloat16", channels_last=True)}


# ----------------------------------------------------------------------------- child: one path
def run_path(args) -> None:
    from tpsmm.core import AnimationOptions, AnimationPipeline, DrivingFrames, load_model

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(args.device)
    data = torch.load(args.inputs)
    source, driving = data["source"].to(dev), data["driving"].to(dev)       # [1,3,S,S], [T,3,S,S]
    model = load_model(args.checkpoint, device=dev)
    spec = json.loads(args.spec)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out = []

    def pipeline_run(frames, pipeline):
        clip = DrivingFrames.from_tensor(frames.permute(0, 2, 3, 1))
        return [out.frames.permute(0, 3, 1, 2) for out in pipeline.run(source[0].permute(1, 2, 0), clip)]

    if spec is None:
        fn = lambda frames: naive_loop(model, source, frames)  # noqa: E731
    else:
        options = AnimationOptions(mode="relative", batch_size=spec["batch"], dtype=spec["dtype"],
                                   channels_last=spec.get("channels_last"), backend=spec.get("backend", "torch"))
        pipeline = AnimationPipeline(model, options)
        fn = lambda frames: pipeline_run(frames, pipeline)  # noqa: E731
    fn(driving[: max(2, (spec or {}).get("batch", 1))])                     # warm-up (not timed)
    sync()
    start = time.perf_counter()
    out = fn(driving)
    sync()
    elapsed = time.perf_counter() - start
    torch.save(torch.cat(out), args.result)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024       # MiB (Linux: KiB)
    peak_gpu = torch.cuda.max_memory_allocated() / 2 ** 20 if dev.type == "cuda" else None
    print(json.dumps(dict(fps=driving.shape[0] / elapsed, ms_per_frame=1000 * elapsed / driving.shape[0],
                          peak_rss_mib=peak_rss, peak_gpu_mib=peak_gpu)))


# ----------------------------------------------------------------------------- parent
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="vox-256 checkpoint (default: random weights, same architecture)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--batch", type=int, help="pipeline batch (default: 2 on the CPU, 8 on a GPU)")
    p.add_argument("--repeats", type=int, default=2, help="rounds over all paths; the best round counts (default 2)")
    p.add_argument("--quick", action="store_true", help="8 frames, batch 4, one round: checks the script works")
    p.add_argument("--rss", action="store_true", help="also measure peak RSS of `tpsmm animate`, 60 vs 600 frames")
    p.add_argument("--rss-checkpoint", help="checkpoint for --rss (default: a tiny random 64² model)")
    p.add_argument("--no-write", action="store_true", help="print the section instead of updating RESULTS.md")
    p.add_argument("--speed-only", action="store_true", help="only the speed table (no hires / demo quality rows)")
    p.add_argument("--only", help="comma-separated path names to run (naive-fp32 is always run: it is the reference)")
    p.add_argument("--run-path", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.run_path:
        return run_path(args)
    batch = args.batch or (2 if args.device == "cpu" else 8)
    frames, batch = (8, min(batch, 4)) if args.quick else (args.frames, batch)
    load_start = os.getloadavg()[0]
    args.repeats = 1 if args.quick else max(1, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or random_checkpoint(os.path.join(tmp, "vox-random.safetensors"))
        inputs = os.path.join(tmp, "inputs.pt")
        torch.save(make_inputs(256, frames), inputs)
        best, outs = {}, {}
        for rnd in range(args.repeats):                # rounds interleave the paths: load spikes hit all of them
            for name, spec in paths_for(args.device, batch).items():
                if args.only and name != "naive-fp32" and name not in args.only.split(","):
                    continue
                result = os.path.join(tmp, f"{name}.pt")
                cmd = [sys.executable, __file__, "--run-path", name, "--spec", json.dumps(spec), "--inputs", inputs,
                       "--result", result, "--checkpoint", ckpt, "--device", args.device]
                res = subprocess.run(cmd, capture_output=True, text=True,
                                     env={**os.environ, "TPSMM_CACHE_DIR": os.path.join(tmp, "graphs")})
                if res.returncode:
                    raise SystemExit(f"{name} failed:\n{res.stderr}")
                m = json.loads(res.stdout.strip().splitlines()[-1])
                print(f"round {rnd + 1}: {name}: {m['fps']:.3f} frames/s", file=sys.stderr)
                if name not in best or m["fps"] > best[name]["fps"]:
                    best[name] = dict(m, peak_rss_mib=max(m["peak_rss_mib"], best.get(name, m)["peak_rss_mib"]))
                outs[name] = torch.load(result)
        table = table_rows(best, outs, args.device)
        load = f"1-min load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        lines = [f"### Animation pipeline — {args.device}, {frames} frames at 256², batch {batch} "
                 f"({datetime.date.today().isoformat()})", "", f"Machine: {machine()}; {load} (a load near or "
                 "above the core count means other jobs shared the CPU and the timings are unreliable).",
                 f"Weights: {'`' + args.checkpoint + '`' if args.checkpoint else 'random (vox-256 architecture)'}; "
                 f"relative mode; timings exclude one warm-up batch; each path in its own process; best of "
                 f"{args.repeats} interleaved round(s).", "", *table]
        if args.device == "cpu" and not args.speed_only:
            lines += ["", "High-resolution output on generated data (model 256², output 1024², "
                      "`benchmarks/hires_case.synthetic_case`): PSNR against the full-resolution ground truth "
                      "(16 px border ignored) and gradient energy (mean squared luminance gradient, 8-bit units; "
                      "higher = sharper).",
                      "", "| method | PSNR (dB) | gradient energy |", "|---|---|---|", *quality.hires_rows()]
            if os.path.exists(os.path.join(HERE, "..", "assets", "demo", "model.safetensors")):
                lines += ["", *quality.demo_rows()]
        if args.rss:
            lines += ["", "Peak RSS of `tpsmm animate` (whole process) on 256² driving clips, "
                      f"{'`' + args.rss_checkpoint + '`' if args.rss_checkpoint else 'tiny random 64² model'}:",
                      "", "| backend | frames | peak RSS (MiB) | wall (s) | ratio |", "|---|---|---|---|---|",
                      *rss_rows(tmp, args.rss_checkpoint)]
    print(write_section(f"animate-{args.device}", "\n".join(lines), dry=args.no_write))


def table_rows(best: dict, outs: dict, device: str) -> list[str]:
    """The markdown table: speed of every path and how far its output is from the naive path's."""
    ref, gpu = outs["naive-fp32"], device == "cuda"
    table = ["| path | frames/s | ms/frame | vs naive | max abs diff vs naive (torch fp32) | PSNR vs naive (dB) | "
             "peak RSS (MiB) |"
             + (" peak GPU (MiB) |" if gpu else ""), "|---|---|---|---|---|---|---|" + ("---|" if gpu else "")]
    for name, m in best.items():
        diff, pv = float((outs[name] - ref).abs().max()), clip_psnr(outs[name], ref)
        speed = m["fps"] / best["naive-fp32"]["fps"]
        extra = f" {m['peak_gpu_mib']:.0f} |" if gpu else ""
        table.append(f"| {name} | {m['fps']:.3f} | {m['ms_per_frame']:.1f} | {speed:.2f}x | {diff:.2e} | "
                     f"{pv:.1f} | {m['peak_rss_mib']:.0f} |{extra}")
    return table


if __name__ == "__main__":
    main()
