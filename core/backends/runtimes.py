"""Graph runtimes (ONNX Runtime, OpenVINO): availability, versions, and one session type for both.

A :class:`GraphSession` runs one exported graph: ``session({name: ndarray}) -> [ndarray, ...]`` in the
graph's output order. Every failure a user can cause (runtime not installed, graph the runtime refuses,
device it cannot use) is a :class:`BackendError` with one line naming the runtime and what to do.

Precision: ``float32`` is float32 on both runtimes — OpenVINO gets the float32 inference-precision
hint, without which it picks bfloat16 by itself on AMX CPUs. ``bfloat16`` is the networks' mixed policy on
OpenVINO (CPUs with AVX512-BF16 or AMX): the convolution trunks in bf16, the rest in float32
(:mod:`.mixed_precision`). ONNX Runtime has no bfloat16 CPU kernels, so there it is refused by
:func:`runtime_dtype` with a warning and float32 is used.
"""
from __future__ import annotations

import importlib
import warnings

import numpy as np
import torch

from .mixed_precision import bf16_trunks

__all__ = ["RUNTIMES", "BackendError", "require", "runtime_version", "installed", "runtime_dtype", "GraphSession"]

RUNTIMES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
"""Backend name -> the Python module it needs (and the pip extra of the same name)."""


class BackendError(RuntimeError):
    """A backend that cannot run here, or a graph it cannot use (one line, meant for users)."""


def require(name: str):
    """The imported runtime module of backend ``name``; :class:`BackendError` naming the pip command if missing."""
    try:
        return importlib.import_module(RUNTIMES[name])
    except ImportError:
        raise BackendError(f"backend {name}: the runtime is not installed; "
                           f"pip install \"tpsmm[{name}]\" (or choose the torch backend)") from None


def installed(name: str) -> bool:
    """Whether backend ``name``'s runtime can be imported."""
    try:
        require(name)
        return True
    except BackendError:
        return False


def runtime_version(name: str) -> str:
    module = require(name)
    version = getattr(module, "__version__", None) or getattr(module, "get_version", lambda: "unknown")()
    return str(version).split("-")[0]


def runtime_dtype(name: str, dtype: torch.dtype) -> torch.dtype:
    """The precision backend ``name`` runs for the requested ``dtype`` (float32 or bfloat16 after
    :func:`~tpsmm.core.device.resolve_dtype`); warns when it must differ."""
    if dtype != torch.float32 and name == "onnxruntime":
        warnings.warn("backend onnxruntime: no bfloat16 CPU kernels; running float32 (openvino runs bfloat16)",
                      RuntimeWarning, stacklevel=2)
        return torch.float32
    return torch.bfloat16 if dtype != torch.float32 else torch.float32


class GraphSession:
    """One exported graph loaded by a runtime.

    Args:
        runtime: ``"onnxruntime"`` or ``"openvino"``.
        path: the ``.onnx`` file.
        device: ``cpu`` (both) or ``cuda`` (ONNX Runtime with the CUDA execution provider).
        dtype: ``torch.float32`` or ``torch.bfloat16`` (see :func:`runtime_dtype`).
        cache_dir: OpenVINO's compiled-model cache (a folder), so a second start skips compilation.
        threads: intra-op threads (``None``: the runtime's default, all cores).
    """

    def __init__(self, runtime: str, path: str, *, device: torch.device, dtype: torch.dtype,
                 cache_dir: str | None = None, threads: int | None = None) -> None:
        self.runtime, self.path = runtime, path
        module = require(runtime)
        try:
            if runtime == "onnxruntime":
                self._ort(module, device, threads)
            else:
                self._openvino(module, device, dtype, cache_dir, threads)
        except BackendError:
            raise
        except Exception as exc:   # the runtime's own message, first line only
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BackendError(f"backend {runtime}: cannot load {path}: {first[:300]}") from None

    def _ort(self, ort, device: torch.device, threads: int | None) -> None:
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError("backend onnxruntime: this onnxruntime has no CUDA execution provider; "
                                   "pip install onnxruntime-gpu, or use the cpu device or the torch backend")
            providers = [("CUDAExecutionProvider", {"device_id": device.index or 0})] + providers
        elif device.type != "cpu":
            raise BackendError(f"backend onnxruntime: cannot run on {device.type}; "
                               "use the cpu device or the torch backend")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        self._session = ort.InferenceSession(self.path, sess_options=opts, providers=providers)
        self.inputs = [i.name for i in self._session.get_inputs()]
        self._run = lambda feeds: self._session.run(None, feeds)

    def _openvino(self, ov, device: torch.device, dtype: torch.dtype, cache_dir: str | None,
                  threads: int | None) -> None:
        if device.type != "cpu":
            raise BackendError(f"backend openvino: runs on the CPU here, not on {device.type}; "
                               "use the cpu device or the torch backend")
        core = ov.Core()
        if cache_dir:
            core.set_property({"CACHE_DIR": cache_dir})
        # float32 hint in both precisions: bfloat16 is written into the model (the convolution trunks), so
        # OpenVINO rounds nothing else
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        model = self.path
        if dtype == torch.bfloat16:
            model = core.read_model(self.path)
            bf16_trunks(ov, model)
        compiled = core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()
        self.inputs = [i.get_any_name() for i in compiled.inputs]
        outputs = list(compiled.outputs)

        def run(feeds):     # inputs shared, not copied (they outlive the call); outputs copied out of the request
            result = request.infer(feeds, share_inputs=True)
            return [np.array(result[o], copy=True) for o in outputs]
        self._run = run

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph; ``feeds`` maps input names to float32 C-contiguous arrays."""
        return self._run({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()})
