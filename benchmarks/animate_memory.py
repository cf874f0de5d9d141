"""Peak memory of ``tpsmm animate`` over short and long driving clips, per backend (rows of ``benchmarks/animate.py --rss``).

Streaming must keep memory flat: the whole process's peak RSS on a 600-frame clip against a 60-frame one (same
frames repeated), measured by running the CLI in a child process and reading ``getrusage`` there.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from animate_inputs import make_inputs, random_checkpoint, tiny_config

__all__ = ["rss_rows"]


def rss_rows(tmp: str, checkpoint: str | None, counts=(60, 600)) -> list[str]:
    """Peak RSS of ``tpsmm animate`` (run in-process by a wrapper) on 256² clips of different lengths, per backend."""
    from tpsmm.core.backends.runtimes import installed
    from tpsmm.core.media.video import VideoWriter

    ckpt = checkpoint or random_checkpoint(os.path.join(tmp, "tiny.safetensors"), tiny_config())
    inputs = make_inputs(256, 10)
    src = os.path.join(tmp, "src.png")
    from tpsmm.core.media.image_io import save_image

    save_image(src, inputs["source"][0].permute(1, 2, 0).numpy())
    wrapper = ("import resource, sys, tpsmm.__main__ as m; m.COMMAND_MODULES = ('tpsmm.core.cli',); "
               "rc = m.main(sys.argv[1:]); print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); "
               "sys.exit(rc)")
    rows = []
    for n in counts:
        clip = os.path.join(tmp, f"drv{n}.mp4")
        with VideoWriter(clip, fps=25) as w:
            for t in range(n):
                w.write(inputs["driving"][t % 10].permute(1, 2, 0).numpy())
    for backend in ["torch"] + [r for r in ("onnxruntime", "openvino") if installed(r)]:
        peaks = []
        for n in counts:
            cmd = [sys.executable, "-c", wrapper, "animate", "--checkpoint", ckpt, "--source", src, "--driving",
                   os.path.join(tmp, f"drv{n}.mp4"), "--out", os.path.join(tmp, f"out{n}.mp4"), "--quiet",
                   "--overwrite", "--device", "cpu", "--backend", backend]
            start = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TPSMM_CACHE_DIR": tmp})
            if res.returncode:
                raise SystemExit(f"tpsmm animate failed: {res.stderr.strip()}")
            kib = int([l for l in res.stdout.splitlines() if l.startswith("RSS")][-1].split()[1])
            peaks.append(kib / 1024)
            ratio = f"{peaks[-1] / peaks[0]:.2f}x of {counts[0]} frames" if len(peaks) > 1 else "–"
            rows.append(f"| {backend} | {n} | {kib / 1024:.0f} | {time.perf_counter() - start:.1f} | {ratio} |")
    return rows


