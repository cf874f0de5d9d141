"""The node pack under test, imported the way ComfyUI imports it: its nodes derive from ``comfy_api.latest``, so
ComfyUI's own ``comfy_api`` must be importable. It comes from a real ComfyUI folder: ``TPSMM_COMFYUI`` if set, else
the snapshot in ``../shared/comfyui`` (unpacked once per test process, see tests/assets.py). Where neither
exists the calling test module is skipped with the reason (in CI it fails).

``call(node_id, prompt=None, unique_id=None, **inputs)`` runs a node as ComfyUI's executor does (a class clone
carrying the hidden inputs, then ``execute``) and returns its outputs as a tuple.
"""
from __future__ import annotations

import atexit
import inspect
import shutil
import sys
import tempfile
from pathlib import Path

import assets

_ROOT: list[Path] = []


def comfyui_root() -> Path:
    """A ComfyUI folder (with ``main.py``) found by tests/assets.py, unpacked once per test process; skips the calling
    test module (fails it in CI) where there is none."""
    if not _ROOT:
        dest = Path(tempfile.mkdtemp(prefix="tpsmm-comfy-api-"))
        atexit.register(shutil.rmtree, dest, ignore_errors=True)
        assets.COMFYUI.require(module=True)
        _ROOT.append(assets.comfyui_folder(dest))
    return _ROOT[0]


def import_nodes():
    """``tpsmm.tpsmm_nodes`` with ComfyUI's root on ``sys.path`` (as inside ComfyUI)."""
    root = comfyui_root()
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
