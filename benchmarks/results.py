"""How benchmarks report: the PSNR their tables print and the sections they write into ``RESULTS.md``.

Each benchmark owns one section of ``benchmarks/RESULTS.md``, between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->``; :func:`write_section` replaces that section (or appends it) and keeps the rest of the file.
"""
from __future__ import annotations

import math
import os

import torch

__all__ = ["RESULTS", "clip_psnr", "write_section"]

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def clip_psnr(output: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of a whole clip (one mean squared error over every frame), values in ``[0, 1]``.

    Args:
        output, reference: tensors of the same shape, e.g. ``[T,3,H,W]``.

    Returns:
        ``inf`` when they are equal.
    """
    if output.shape != reference.shape:
        raise ValueError(f"clip_psnr: shapes differ: {tuple(output.shape)} vs {tuple(reference.shape)}")
    mse = float(((output.float() - reference.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def write_section(name: str, text: str, *, dry: bool = False, path: str = RESULTS) -> str:
    """Put ``text`` between the ``name`` markers of ``path`` (atomically) and return the marked block;
    with ``dry`` only return it."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text}\n{end}"
    if dry:
        return block
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(new)
    os.replace(path + ".tmp", path)
    return block
