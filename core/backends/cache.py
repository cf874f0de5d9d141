"""Where exported graphs are kept between runs, and how an entry is found, checked or rebuilt.

Location: ``$TPSMM_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/tpsmm`` (``~/.cache/tpsmm``); never inside
the repository. Entries are folders ``graphs/<weights digest>-<size>-<runtime><version>-torch<version>-code<digest>``,
each a complete ``tpsmm export`` folder plus the backends' internal graphs (the source graph and the generator
on its outputs, :data:`~tpsmm.core.backends.graphs.INTERNAL`), all checked alike: the key changes with the model's
weights, its size, the runtime and torch versions and the source that defines the graphs, so nothing is ever reused
across them. An entry that fails :func:`~tpsmm.core.backends.export.check_export` (truncated, edited, another
model, missing a graph) is rebuilt, never used. OpenVINO's compiled blobs live in the entry's ``openvino/`` folder, so a
second start skips both the export and the compilation.
"""
from __future__ import annotations

import os
import shutil

import torch

from .export import check_export, code_digest, export_graphs, graph_names, weights_digest
from .runtimes import BackendError, runtime_version

__all__ = ["CACHE_ENV", "cache_root", "cached_export"]

CACHE_ENV = "TPSMM_CACHE_DIR"


def cache_root() -> str:
    """The cache folder (see the module docstring); not created here."""
    if os.environ.get(CACHE_ENV):
        return os.path.abspath(os.path.expanduser(os.environ[CACHE_ENV]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tpsmm")


def cached_export(networks, runtime: str, *, background: bool = False, progress=None) -> str:
    """The folder of a checked export of ``networks`` for ``runtime``, exporting it on first use.

    ``progress(message)`` gets one line when graphs are exported (first use or a stale entry).
    """
    key = "-".join([weights_digest(networks), str(networks.config.image_size),
                    runtime + runtime_version(runtime), "torch" + torch.__version__.split("+")[0],
                    "code" + code_digest()])
    folder = os.path.join(cache_root(), "graphs", key)
    background = background or networks.bg_predictor is not None    # one entry serves both variants
    needed = graph_names(networks, background=background, internal=True)
    try:
        check_export(folder, networks=networks, graphs=needed)
        return folder
    except BackendError as exc:
        if os.path.lexists(folder):
            if progress:
                progress(f"stale graph cache entry ({exc}); rebuilding")
            shutil.rmtree(folder, ignore_errors=True) if os.path.isdir(folder) else os.remove(folder)
    if progress:
        progress(f"first use of {runtime} for this model: exporting its graphs to {folder} (about a minute)")
    try:
        export_graphs(networks, folder, background=background, internal=True, progress=progress)
    except OSError as exc:
        raise BackendError(f"graph cache {cache_root()}: cannot write ({exc.strerror or exc}); "
                           f"set {CACHE_ENV} to a writable folder") from None
    return folder
