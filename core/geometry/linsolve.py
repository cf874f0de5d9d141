"""Small dense linear solves written with elementwise ops and matmuls only (exportable to any graph runtime).

:func:`householder_solve` solves ``A x = b`` for a batch of small square systems by Householder QR,
unrolled over the ``n - 1`` columns, then back substitution. It needs no pivoting (orthogonal
reflections never grow the entries), so it is backward stable in float32 for every non-singular
system, unlike Gauss-Jordan without pivoting. Every step is a mask, a reduction, a square root or a
matmul: exported to ONNX it becomes standard ops (``MatMul``, ``ReduceSum``, ``Sqrt``, ``Where``,
``Div``), which ONNX Runtime, OpenVINO and TensorRT all run.

Cost: ``O(n^3)`` per system like an LU; for TPSMM's ``8 x 8`` TPS systems it is negligible next to
the networks. The torch path keeps :func:`torch.inverse` (the release's numerics, bit for bit).
"""
from __future__ import annotations

import torch

__all__ = ["householder_solve"]

_TINY = 1e-30


def householder_solve(a: torch.Tensor, b: torch.Tensor, *, refine: int = 1) -> torch.Tensor:
    """Solve ``a @ x = b``.

    Args:
        a: ``[..., n, n]`` non-singular systems (float32 or float64).
        b: ``[..., n, m]`` right-hand sides (same leading shape and dtype).
        refine: steps of iterative refinement (``x += solve(a, b - a x)``); one brings float32 TPS systems
            to LU-with-pivoting accuracy or better (``tests/test_backends.py``).

    Returns:
        ``x`` ``[..., n, m]``.
    """
    x = _qr_solve(a, b)
    for _ in range(refine):
        x = x + _qr_solve(a, b - torch.matmul(a, x))
    return x


def _qr_solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """One unrolled Householder QR solve (checked by :func:`householder_solve`)."""
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"householder_solve: a must be [..., n, n], got {tuple(a.shape)}")
    if b.ndim != a.ndim or b.shape[-2] != a.shape[-1]:
        raise ValueError(f"householder_solve: b must be [..., {a.shape[-1]}, m], got {tuple(b.shape)}")
    n = a.shape[-1]
    m = torch.cat([a, b], dim=-1)                                   # [..., n, n+m]: reflect both at once
    rows = torch.arange(n, device=a.device)
    for k in range(n - 1):
        col = m[..., :, k:k + 1] * (rows >= k).to(a.dtype)[:, None]  # [..., n, 1]: rows above k masked out
        pivot = col[..., k:k + 1, :]
        norm = torch.sqrt((col * col).sum(dim=-2, keepdim=True))
        alpha = -torch.where(pivot >= 0, norm, -norm)                # sign chosen against cancellation
        v = col - alpha * (rows == k).to(a.dtype)[:, None]
        vv = (v * v).sum(dim=-2, keepdim=True) + _TINY
        m = m - v * (2.0 / vv) * torch.matmul(v.transpose(-1, -2), m)
    r, y = m[..., :, :n], m[..., :, n:]
    xs: list[torch.Tensor] = [None] * n  # type: ignore[list-item]
    for i in reversed(range(n)):                                    # back substitution, last row first
        acc = y[..., i:i + 1, :]
        for j in range(i + 1, n):
            acc = acc - r[..., i:i + 1, j:j + 1] * xs[j]
        xs[i] = acc / r[..., i:i + 1, i:i + 1]
    return torch.cat(xs, dim=-2)
