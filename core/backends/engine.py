"""The renderer of the graph backends: the same three calls as the torch engine, run by a graph runtime.

:class:`GraphEngine` mirrors :class:`~tpsmm.core.animation.engine.AnimationEngine` (``detect``,
``cache_source``, ``render_batch``, ``batch_size``), so :class:`~tpsmm.core.animation.pipeline.AnimationPipeline`
runs every feature (modes, smoothing, crops and faces, high resolution, layouts, streaming, audio,
batch jobs) unchanged on ONNX Runtime or OpenVINO; only the forward passes move into the graphs.
Tensors cross the boundary as float32 numpy arrays on the CPU; results come back as float32 torch
tensors on the model's device.
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
from .runtimes import GraphSession, runtime_dtype

__all__ = ["GraphEngine", "GraphSource"]


@dataclass
class GraphSource:
    """Source-only inputs reused for every batch.

    Attributes:
        frame: ``[1,3,S,S]`` float32 source (torch, model layout).
        array: the same as a C-contiguous float32 numpy array (the graphs' ``source`` input).
    """

    frame: torch.Tensor
    array: np.ndarray


class GraphEngine:
    """Renders with exported graphs of ``model`` on ``runtime`` (``onnxruntime`` | ``openvino``).

    Args:
        model: the :class:`~tpsmm.core.model.TPSMMNetworks` whose graphs run (its torch networks are used
            only to export them, once per model, size and runtime version; see :mod:`.cache`).
        runtime: backend name.
        batch_size: driving frames per graph call.
        dtype: ``torch.float32`` or ``torch.bfloat16`` (after :func:`~tpsmm.core.device.resolve_dtype`).
        background: also load the ``generator-bg`` graph (background motion).
        graphs: an export folder to use instead of the cache (checked against ``model``).
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
        if graphs is not None:
            check_export(graphs, networks=model, graphs=needed)
            folder = graphs
        else:
            folder = cached_export(model, runtime, background=background, progress=progress)
        blobs = os.path.join(folder, runtime) if graphs is None else None
        if blobs:
            os.makedirs(blobs, exist_ok=True)
        load = lambda name: GraphSession(runtime, os.path.join(folder, f"{name}.onnx"),  # noqa: E731
                                         device=self.device, dtype=self.compute_dtype, cache_dir=blobs)
        self.folder = folder
        # keypoints decide where everything moves: always float32, as on the torch path
        self._kp = GraphSession(runtime, os.path.join(folder, "keypoints.onnx"), device=self.device,
                                dtype=torch.float32, cache_dir=blobs)
        self._gen = load("generator")
        self._gen_bg = load("generator-bg") if background else None

    def _torch(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    @torch.no_grad()
    def detect(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B,3,S,S]`` model-layout frames -> ``[B,5K,2]`` float32 keypoints."""
        return self._torch(self._kp({"image": frames.detach().float().cpu().numpy()})[0])

    @torch.no_grad()
    def cache_source(self, source: torch.Tensor) -> GraphSource:
        """``[1,3,S,S]`` model-layout source -> :class:`GraphSource`."""
        source = source.detach().to(device=self.device, dtype=torch.float32)
        return GraphSource(frame=source, array=np.ascontiguousarray(source.cpu().numpy()))

    @torch.no_grad()
    def render_batch(self, cache: GraphSource, kp_source: torch.Tensor, kp_driving: torch.Tensor, *,
                     bg_param: torch.Tensor | None = None) -> tuple[Generated, DenseMotion]:
        """Like :meth:`AnimationEngine.render_batch`: ``prediction``, ``deformation`` and the finest
        ``occlusion`` are filled (float32, on the model's device); the other fields are empty."""
        feeds = {"source": cache.array, "source_keypoints": kp_source[:1].detach().float().cpu().numpy(),
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
