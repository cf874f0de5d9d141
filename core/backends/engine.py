"""The renderer of the graph backends: the same three calls as the torch engine, run by a graph runtime.

:class:`GraphEngine` mirrors :class:`~tpsmm.core.animation.engine.AnimationEngine` (``detect``,
``cache_source``, ``render_batch``, ``batch_size``), so :class:`~tpsmm.core.animation.pipeline.AnimationPipeline`
runs every feature (modes, smoothing, crops and faces, high resolution, layouts, streaming, audio,
batch jobs) unchanged on ONNX Runtime or OpenVINO; only the forward passes move into the graphs.
Tensors cross the boundary as float32 numpy arrays on the CPU; results come back as float32 torch
tensors on the model's device.

As on the torch path, what depends only on the source (the dense motion network's downscale and the inpainting
encoder maps) is computed once per clip: :meth:`GraphEngine.cache_source` runs the internal ``source-cache``
graph and every batch feeds its outputs to ``generator-cached`` (see :mod:`.graphs`). The cache entries of
:mod:`.cache` hold those graphs; a user's export folder (``graphs=``) usually does not, and then every batch
runs the contract's ``generator.onnx`` on the raw source, as before.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..networks.dense_motion import DenseMotion
from ..networks.inpainting import Generated
from .cache import cached_export
from .export import check_export, graph_names
from .graphs import graph_io
from .runtimes import GraphSession, runtime_dtype

__all__ = ["GraphEngine", "GraphSource"]


@dataclass
class GraphSource:
    """Source-only inputs reused for every batch.

    Attributes:
        frame: ``[1,3,S,S]`` float32 source (torch, model layout).
        feeds: the generator graph's per-clip inputs, C-contiguous float32 numpy arrays: ``source [1,3,S,S]``,
            and with the internal graphs ``source_small [1,3,h,w]`` and ``encoded_0..N`` (finest first).
    """

    frame: torch.Tensor
    feeds: dict[str, np.ndarray]


class GraphEngine:
    """Renders with exported graphs of ``model`` on ``runtime`` (``onnxruntime`` | ``openvino``).

    Args:
        model: the :class:`~tpsmm.core.model.TPSMMNetworks` whose graphs run (its torch networks are used
            only to export them, once per model, size and runtime version; see :mod:`.cache`).
        runtime: backend name.
        batch_size: driving frames per graph call.
        dtype: ``torch.float32`` or ``torch.bfloat16`` (after :func:`~tpsmm.core.device.resolve_dtype`).
        background: also load the background variant of the generator graph (background motion).
        graphs: an export folder to use instead of the cache (checked against ``model``); its internal graphs
            are used when it has them (a cache entry does), else ``generator.onnx`` runs on the raw source.
        progress: ``progress(message)`` for the one-line notes of a first-use export.
    """

    def __init__(self, model, runtime: str, *, batch_size: int = 2, dtype: torch.dtype = torch.float32,
                 background: bool = False, graphs: str | None = None, progress=None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.runtime, self.batch_size = model, runtime, batch_size
        self.device = model.device
        self.compute_dtype = runtime_dtype(runtime, dtype)
        needed = graph_names(model, background=background)
        internal = tuple(n for n in graph_names(model, background=background, internal=True) if n not in needed)
        if graphs is not None:
            listed = check_export(graphs, networks=model, graphs=needed).get("graphs") or {}
            self.cached = all(n in listed for n in internal)
            if self.cached:
                check_export(graphs, graphs=internal)       # listed: then whole (checksums), or an error
            folder = graphs
        else:
            folder, self.cached = cached_export(model, runtime, background=background, progress=progress), True
        blobs = os.path.join(folder, runtime) if graphs is None else None
        if blobs:
            os.makedirs(blobs, exist_ok=True)
        load = lambda name, dtype=self.compute_dtype: GraphSession(  # noqa: E731
            runtime, os.path.join(folder, f"{name}.onnx"), device=self.device, dtype=dtype, cache_dir=blobs)
        self.folder = folder
        # keypoints decide where everything moves: always float32, as on the torch path; the source graph
        # runs once per clip, so float32 too (the torch engine's downscale is float32 as well)
        self._kp = load("keypoints", torch.float32)
        self._source = load("source-cache", torch.float32) if self.cached else None
        self._source_names = graph_io("source-cache", model)[1]
        gen = "generator-cached" if self.cached else "generator"
        self._gen = load(gen)
        self._gen_bg = load(f"{gen}-bg") if background else None

    def _torch(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    @torch.no_grad()
    def detect(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B,3,S,S]`` model-layout frames -> ``[B,5K,2]`` float32 keypoints."""
        return self._torch(self._kp({"image": frames.detach().float().cpu().numpy()})[0])

    @torch.no_grad()
    def cache_source(self, source: torch.Tensor) -> GraphSource:
        """``[1,3,S,S]`` model-layout source -> :class:`GraphSource` (runs the source graph once, when loaded)."""
        source = source.detach().to(device=self.device, dtype=torch.float32)
        feeds = {"source": np.ascontiguousarray(source.cpu().numpy())}
        if self._source is not None:
            feeds.update(zip(self._source_names, self._source(feeds)))
        return GraphSource(frame=source, feeds=feeds)

    @torch.no_grad()
    def render_batch(self, cache: GraphSource, kp_source: torch.Tensor, kp_driving: torch.Tensor, *,
                     bg_param: torch.Tensor | None = None) -> tuple[Generated, DenseMotion]:
        """Like :meth:`AnimationEngine.render_batch`: ``prediction``, ``deformation`` and the finest
        ``occlusion`` are filled (float32, on the model's device); the other fields are empty."""
        feeds = {**cache.feeds, "source_keypoints": kp_source[:1].detach().float().cpu().numpy(),
                 "driving_keypoints": kp_driving.detach().float().cpu().numpy()}
        session = self._gen
        if bg_param is not None:
            session = self._gen_bg
            feeds["bg_param"] = bg_param.detach().float().cpu().numpy()
        frames, occlusion, deformation = (self._torch(a) for a in session(feeds))
        empty = frames.new_zeros(0)
        return (Generated(prediction=frames, deformed=empty, warped_encoder_maps=[]),
                DenseMotion(deformation=deformation, contribution_maps=empty, occlusion=[occlusion],
                            deformed_source=empty))
