"""Peak client memory of ``tpsmm render`` and checkpoint loading against hostile inputs (issue #21).

    PYTHONPATH=<folder holding tpsmm> python benchmarks/hostile_memory.py [--gib 2]

Each case runs in a fresh child process, started by a fresh wrapper process that prints
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after the child exits: the child's own peak resident
set size. A baseline row (the interpreter with torch and the render client imported) comes first. Cases:

* a 2 GiB ``/view`` body named ``ok.png`` (default limits, then ``--max-download 64``);
* a 1 GiB ``/object_info``;
* a ``.pth.tar`` of a few KB whose tensor record inflates to 2 GiB.

Writes a table between markers into ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from hostile_server import WORKFLOW, HostileComfy  # noqa: E402
from machine import cpu_features, cpu_name  # noqa: E402
from results import write_section  # noqa: E402

WRAP = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_mib(cmd: list[str], cwd: str) -> tuple[float, float, str]:
    """Run ``cmd`` in a child of a fresh wrapper; (the child's peak RSS in MiB, seconds, last stderr line)."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", WRAP, *cmd], cwd=cwd, capture_output=True, text=True)
    took = time.monotonic() - start
    lines = proc.stderr.strip().splitlines() or ["(no message)"]
    return int(proc.stdout.strip().splitlines()[-1]) / 1024, took, lines[-1][:150]


def bomb(path: str, gib: float) -> None:
    import torch

    torch.save({"kp_detector": {"w": torch.zeros(4)}}, path)
    with zipfile.ZipFile(path) as z:
        items = [(i, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for info, data in items:
            if info.filename.endswith("/data/0"):
                big = zipfile.ZipInfo(info.filename)
                big.compress_type = zipfile.ZIP_DEFLATED
                with z.open(big, "w", force_zip64=True) as f:
                    block = b"\0" * (1 << 20)
                    for _ in range(int(gib * 1024)):
                        f.write(block)
            else:
                z.writestr(info, data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=2.0, help="size of the hostile /view body and bomb record")
    args = ap.parse_args()
    size = int(args.gib * (1 << 30))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "wf.json"), "w") as f:
            json.dump(WORKFLOW, f)
        from PIL import Image

        Image.new("RGB", (8, 8), (255, 0, 0)).save(os.path.join(d, "in.png"))
        render = [sys.executable, "-m", "tpsmm", "render", "wf.json", "--quiet", "--set", "1.image=in.png"]
        rows.append(("python -c 'import torch' (baseline)",
                     *peak_mib([sys.executable, "-c", "import torch, tpsmm.render.cli"], d)))
        cases = [(f"/view sends {args.gib:g} GiB as ok.png (default limits)", {"/view": {"mode": "huge", "size": size}}, []),
                 (f"/view sends {args.gib:g} GiB, --max-download 64", {"/view": {"mode": "huge", "size": size}},
                  ["--max-download", "64"]),
                 ("/object_info sends 1 GiB", {"/object_info": {"mode": "huge", "size": 1 << 30}}, [])]
        for label, tricks, extra in cases:
            with HostileComfy(tricks, lifetime=600) as server:
                out = os.path.join(d, f"out{len(rows)}")
                rows.append((label, *peak_mib(render + ["--server", server.url, "--out", out, *extra], d)))
        path = os.path.join(d, "bomb.pth.tar")
        bomb(path, args.gib)
        load = f"from tpsmm.core.model.checkpoint import read_official; read_official({path!r})"
        rows.append((f".pth.tar of {os.path.getsize(path) >> 10} KiB inflating to {args.gib:g} GiB",
                     *peak_mib([sys.executable, "-c", load], d)))
    table = [f"### Client memory against hostile inputs ({datetime.date.today()})", "",
             f"`python benchmarks/hostile_memory.py --gib {args.gib:g}`; machine: {cpu_name()} ({cpu_features()}), "
             f"{platform.system()}, "
             "2 cores shared with other jobs. Peak RSS of each child process (`getrusage(RUSAGE_CHILDREN).ru_maxrss` "
             "in a fresh wrapper); the first row is the interpreter with torch and the client imported.", "",
             "| case | peak RSS (MiB) | seconds | the one line it ends with |", "|---|---|---|---|"]
    table += [f"| {label} | {mib:.0f} | {took:.1f} | {line.replace('|', '/')} |" for label, mib, took, line in rows]
    print(write_section("hostile-memory", "\n".join(table)))


if __name__ == "__main__":
    main()
