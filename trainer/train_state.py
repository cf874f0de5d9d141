"""Training-state files: optimisers, schedulers, counters and RNG states in one pickle-free safetensors file.

A nested state (dicts with str/int keys, lists, tuples, tensors, numbers, strings, None) is split into
its tensors (stored as safetensors tensors ``t0, t1, ...``) and a JSON skeleton (stored in the file's
metadata under ``state``), so reading it back never unpickles anything. Files are written atomically.
"""
from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..core.media.atomic import atomic_write

__all__ = ["TrainStateError", "save_state", "load_state", "capture_rng", "restore_rng", "STATE_FORMAT"]

STATE_FORMAT = "tpsmm-train-state"
_VERSION = "1"


class TrainStateError(ValueError):
    """A training-state file is missing, unreadable or of another format; the message names the file."""


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"training state: unsupported key {k!r} ({type(k).__name__})")
            items.append([k, _encode(v, tensors)])
        return {"__dict__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise TypeError(f"training state: unsupported value of type {type(obj).__name__}")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        return {k: _decode(v, tensors) for k, v in obj["__dict__"]}
    return obj


def save_state(path: str, state: dict[str, Any]) -> None:
    """Write ``state`` (see module doc for what it may contain) to ``path`` atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.dumps(_encode(state, tensors))
    meta = {"format": STATE_FORMAT, "format_version": _VERSION, "state": skeleton}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_state(path: str) -> dict[str, Any]:
    """Read a file written by :func:`save_state` (tensors on CPU)."""
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise TrainStateError(f"{path}: not a readable training-state file ({exc})") from None
    if meta.get("format") != STATE_FORMAT or "state" not in meta:
        raise TrainStateError(f"{path}: not a tpsmm training-state file")
    if meta.get("format_version") != _VERSION:
        raise TrainStateError(f"{path}: training-state version {meta.get('format_version')!r} is not supported")
    return _decode(json.loads(meta["state"]), tensors)


def capture_rng() -> dict[str, Any]:
    """The global RNG states: torch CPU (and CUDA when available), numpy, Python ``random``."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`capture_rng` (CUDA states only if this machine has the devices)."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) <= torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
