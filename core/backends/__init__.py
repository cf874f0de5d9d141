"""Ways to run the networks inside the one pipeline: torch itself, or exported ONNX graphs run by
ONNX Runtime or OpenVINO (layer 2.5: above the model container, below the animation pipeline).

* :mod:`.graphs` — the graph contract (inputs/outputs of ``keypoints``, ``generator``, ``avd``) and the backends'
  internal graphs (the source encoded once per clip, the generator on that encoding).
* :mod:`.export` — ``tpsmm export``: writing and checking an export folder.
* :mod:`.cache` — where exported graphs are kept for the backends (``TPSMM_CACHE_DIR``).
* :mod:`.runtimes` — the runtimes, their availability and sessions.
* :mod:`.engine` — :class:`GraphEngine`, the renderer the pipeline uses for a graph backend.
* :mod:`.choice` — backend names and what ``auto`` picks.
"""
from .choice import BACKENDS, check_backend, resolve_backend
from .runtimes import BackendError

__all__ = ["BACKENDS", "BackendError", "check_backend", "resolve_backend"]
