"""The machine a benchmark ran on, in words: CPU model, the CPU features that decide bf16 speed, threads.

Every benchmark row names these (AVX2, AVX512F, AVX512-BF16, AMX): bfloat16 is native with AVX512-BF16 or AMX
and emulated ~100x slower without, so a figure means nothing without them.
"""
from __future__ import annotations

import os
import platform

import torch

__all__ = ["cpu_name", "cpu_features", "machine"]

FEATURES = {"avx2": "AVX2", "avx512f": "AVX512F", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX"}
"""``/proc/cpuinfo`` flag -> the name printed."""


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; else what ``platform`` says)."""
    return next((line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines() if line.startswith("model name")),
                platform.processor() or "unknown CPU")


def cpu_features() -> str:
    """Which of AVX2, AVX512F, AVX512-BF16 and AMX this CPU has, e.g. ``"AVX2 yes, ..., AMX no"``."""
    line = next((ln for ln in _cpuinfo().splitlines() if ln.startswith("flags")), None)
    if line is None:
        return "unknown"
    flags = line.split(":", 1)[1].split()
    return ", ".join(f"{label} {'yes' if flag in flags else 'no'}" for flag, label in FEATURES.items())


def machine() -> str:
    """One line: CPU, cores, features, torch version and threads (and the GPU when there is one)."""
    text = (f"{cpu_name()}, {os.cpu_count()} cores (os.cpu_count), CPU features: {cpu_features()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name(0)}"
    return text
