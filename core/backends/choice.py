"""Backend names and what ``auto`` picks.

``auto`` (the default everywhere: CLI, API, nodes) picks, by measurement on this project's CPUs
(``benchmarks/RESULTS.md``):

* on a CUDA or MPS device: ``torch`` (the graph runtimes here are CPU builds);
* on the CPU in float32: ``openvino`` when installed (fastest), else ``onnxruntime``, else ``torch``;
* on the CPU in bfloat16: ``openvino`` when installed, else ``torch`` (ONNX Runtime has no bf16 CPU kernels).
  Both keep the TPS solve, grids, sampling and blends in float32 (:mod:`.mixed_precision` for OpenVINO);
  OpenVINO was the faster on both CPUs measured (Zen 4 with AVX512-BF16, a Xeon with AMX).

``TPSMM_BACKEND`` (``torch`` | ``onnxruntime`` | ``openvino``), when set, is what ``auto`` means — e.g. to
keep a test suite or a comparison on one backend.
"""
from __future__ import annotations

import os

import torch

from ..media.errors import FieldError

from .runtimes import installed, require

__all__ = ["BACKENDS", "BACKEND_ENV", "check_backend", "resolve_backend"]

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
"""Every backend name, ``auto`` first (the choices of ``--backend`` and the node input)."""
BACKEND_ENV = "TPSMM_BACKEND"


def check_backend(name: str, *, what: str = "backend") -> str:
    """``name`` if it is one of :data:`BACKENDS`, else a :class:`~tpsmm.core.media.errors.FieldError` naming ``what``."""
    if name not in BACKENDS:
        raise FieldError(f"expected one of {', '.join(BACKENDS)}, got {name!r}", field=what)
    return name


def resolve_backend(name: str, device: torch.device | str, dtype: torch.dtype) -> str:
    """The concrete backend for ``name`` on ``device`` in ``dtype`` (``auto`` resolved, see the module docstring).

    An explicit runtime that is not installed is a :class:`BackendError` naming the pip command.
    """
    check_backend(name)
    if name == "auto":
        name = check_backend(os.environ.get(BACKEND_ENV) or "auto", what=BACKEND_ENV)
        if name != "auto":
            return resolve_backend(name, device, dtype)
        if torch.device(device).type != "cpu":
            return "torch"
        candidates = ("openvino", "onnxruntime") if dtype == torch.float32 else ("openvino",)
        return next((r for r in candidates if installed(r)), "torch")
    if name != "torch":
        require(name)
    return name
