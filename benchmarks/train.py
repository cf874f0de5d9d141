"""Training throughput of ``tpsmm train`` against a naive baseline, measured in the same run.

* baseline ("naive"): fp32, no autocast, no decoded-frame cache, no DataLoader workers;
* tpsmm ("ours"): decoded-frame cache, DataLoader workers, bf16 autocast on CUDA (fp32 on CPU, where bf16
  autocast is not faster).

Both go through the real trainer (:class:`tpsmm.trainer.loop.Trainer`) on the same data: synthetic character
clips (``tpsmm make-dataset``) re-encoded as H.264 ``.mp4`` files, so every sample decodes video as with real
data. The time of a step counts everything (data wait, forward, backward, optimiser), from ``metrics.jsonl``;
warm-up steps are dropped.

CPU (default): the tiny test architecture at 64x64, batch 4. CUDA (``--device cuda``): the vox-256 preset,
batch 28 (the released per-run batch), 256x256. The reconstruction loss is VGG-19 when its weights are on disk,
else the L1+SSIM fallback (the same for both variants; printed in the results).

    python benchmarks/train.py [--device cpu|cuda] [--steps 8] [--warmup 2] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

from tpsmm.core.model.config import Config, ModelConfig, TrainConfig, get_preset
from tpsmm.core.media.video_writer import VideoWriter
from tpsmm.trainer.data import read_frames, scan_videos, training_dataset
from tpsmm.trainer.loop import Trainer, TrainOptions
from tpsmm.trainer.losses import find_vgg_weights
from tpsmm.trainer.synthetic.dataset import make_dataset


def make_video_data(root: str, *, videos: int, frames: int, size: int) -> str:
    """Synthetic clips as frame folders, then re-encoded to ``root/mp4/{train,test}/NAME.mp4``."""
    make_dataset(os.path.join(root, "png"), videos=videos, frames=frames, size=size, seed=0, workers=0)
    for split in ("train", "test"):
        for entry in scan_videos(os.path.join(root, "png"), is_train=split == "train"):
            out = os.path.join(root, "mp4", split, entry.name)
            with VideoWriter(out, fps=25) as writer:
                for frame in read_frames(entry):
                    writer.write(frame)
    return os.path.join(root, "mp4")


def config_for(device: str, batch: int | None) -> Config:
    if device == "cpu":
        model = ModelConfig(num_tps=2, gen_block_expansion=8, gen_max_features=32, dm_block_expansion=8,
                            dm_max_features=32, dm_num_blocks=3, avd_id_bottle_size=16, avd_pose_bottle_size=16,
                            image_size=64)
        return Config(name="tiny", model=model, train=TrainConfig(batch_size=batch or 4, bg_start=0))
    vox = get_preset("vox-256")
    return Config(name=vox.name, model=vox.model, dataset=vox.dataset,
                  train=TrainConfig(**{**vox.train.__dict__, "batch_size": batch or vox.train.batch_size,
                                       "bg_start": 0}))


def run_variant(name: str, cfg: Config, data: str, out: str, *, device: str, steps: int, warmup: int, amp: str,
                cache: bool, workers: int, recon: str, vgg: str | None) -> dict:
    total = steps + warmup
    repeats = -(-total * cfg.train.batch_size // 16)  # one epoch covers the whole measurement
    train = TrainConfig(**{**cfg.train.__dict__, "num_repeats": repeats})
    cfg = Config(name=cfg.name, model=cfg.model, dataset=cfg.dataset, train=train)
    dataset = training_dataset(cfg, data, cache_frames=cache, seed=0, num_repeats=repeats)
    opts = TrainOptions(out_dir=out, max_steps=total, amp=amp, device=device, checkpoint_every=0, vis_every=0,
                        recon_loss=recon, vgg_weights=vgg, workers=workers, progress=False, tensorboard=False)
    t0 = time.perf_counter()
    Trainer(cfg, dataset, opts).run()
    wall = time.perf_counter() - t0
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
        seconds = [json.loads(line)["seconds"] for line in f][warmup:]
    mean = statistics.fmean(seconds)
    row = {"variant": name, "amp": amp, "cache_frames": cache, "workers": workers, "steps_timed": len(seconds),
           "s_per_step": round(mean, 4), "steps_per_s": round(1 / mean, 3),
           "samples_per_s": round(cfg.train.batch_size / mean, 2), "wall_s_incl_setup": round(wall, 1)}
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--steps", type=int, default=8, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=2, help="untimed first steps per variant")
    p.add_argument("--batch-size", type=int, help="global batch (default: 4 on CPU, 28 on CUDA)")
    p.add_argument("--workers", type=int, help="DataLoader workers of the tpsmm variant (default: 1 CPU, 6 CUDA)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available on this machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_for(args.device, args.batch_size)
    vgg = find_vgg_weights()
    recon = "vgg" if vgg else "l1-ssim"
    size = cfg.model.image_size
    results = {"device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
               "torch": torch.__version__, "threads": torch.get_num_threads(), "config": cfg.name,
               "image_size": size, "batch_size": cfg.train.batch_size, "recon_loss": recon, "rows": []}
    print(json.dumps({k: v for k, v in results.items() if k != "rows"}), flush=True)
    with tempfile.TemporaryDirectory(prefix="tpsmm-bench-") as tmp:
        data = make_video_data(tmp, videos=20, frames=48, size=size)
        common = dict(device=args.device, steps=args.steps, warmup=args.warmup, recon=recon, vgg=vgg)
        results["rows"].append(run_variant("naive", cfg, data, os.path.join(tmp, "naive"), amp="none", cache=False,
                                           workers=0, **common))
        ours_amp = "bf16" if args.device == "cuda" else "none"
        workers = args.workers if args.workers is not None else (6 if args.device == "cuda" else 1)
        results["rows"].append(run_variant("tpsmm", cfg, data, os.path.join(tmp, "ours"), amp=ours_amp, cache=True,
                                           workers=workers, **common))
    base, ours = results["rows"]
    results["speedup"] = round(base["s_per_step"] / ours["s_per_step"], 2)
    print(f"speedup (tpsmm vs naive, steps/s): {results['speedup']}x", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
