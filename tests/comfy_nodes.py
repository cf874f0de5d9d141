"""The node pack under test, imported the way ComfyUI imports it: its nodes derive from ``comfy_api.latest``, so
ComfyUI's own ``comfy_api`` must be importable. It comes from a real ComfyUI folder: ``TPSMM_COMFYUI`` if set, else
the snapshot in ``../shared/comfyui`` (unpacked once per test process, see tests/comfyui_harness.py). Where neither
exists the calling test module is skipped with the reason.

``call(node_id, prompt=None, unique_id=None, **inputs)`` runs a node as ComfyUI's executor does (a class clone
carrying the hidden inputs, then ``execute``) and returns its outputs as a tuple.
"""
from __future__ import annotations

import atexit
import inspect
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_ROOT: list[Path] = []


def comfyui_root() -> Path | None:
    """A ComfyUI folder (with ``main.py``), or ``None``."""
    if not _ROOT:
        env = os.environ.get("TPSMM_COMFYUI")
        if env and (Path(env) / "main.py").is_file():
            _ROOT.append(Path(env))
        else:
            from comfyui_harness import SHARED, unpack_comfyui

            if not sorted(SHARED.glob("ComfyUI-*.tar.gz")):
                return None
            dest = Path(tempfile.mkdtemp(prefix="tpsmm-comfy-api-"))
            atexit.register(shutil.rmtree, dest, ignore_errors=True)
            _ROOT.append(unpack_comfyui(dest))
    return _ROOT[0]


def import_nodes():
    """``tpsmm.tpsmm_nodes`` with ComfyUI's root on ``sys.path`` (as inside ComfyUI); skips the module without one."""
    root = comfyui_root()
    if root is None:
        pytest.skip("no ComfyUI to import comfy_api from: set TPSMM_COMFYUI or put the snapshot into ../shared/comfyui",
                    allow_module_level=True)
    if str(root) not in sys.path:
        sys.path.append(str(root))
    import tpsmm.tpsmm_nodes as nodes

    return nodes


NODES = {cls.GET_SCHEMA().node_id: cls for cls in import_nodes().NODES}


def call(node_id: str, *, prompt=None, unique_id=None, **inputs) -> tuple:
    """Run node ``node_id`` like ComfyUI's executor (hidden inputs on a class clone) -> its outputs."""
    from comfy_api.latest import io

    hidden = {io.Hidden.prompt: prompt, io.Hidden.unique_id: unique_id}
    clone = NODES[node_id].PREPARE_CLASS_CLONE({"hidden_inputs": hidden})
    return tuple(clone.execute(**inputs).args)


def validate(node_id: str, **inputs) -> bool | str:
    """A node's ``validate_inputs`` as ComfyUI calls it when a prompt is queued: with the inputs of the prompt that
    it names (linked ones as ``None``, the value does not exist yet)."""
    method = NODES[node_id].validate_inputs
    names = inspect.signature(method).parameters
    return method(**{k: v for k, v in inputs.items() if k in names})
