"""The exported graphs as plain tensor-in, tensor-out modules (what ``torch.onnx.export`` traces).

These wrappers define the graph contract (README, "Export contract"); the runners and the export
read the names from here, so the contract has one home.

* :class:`KeypointsGraph` — ``image [B,3,S,S]`` float32 RGB in ``[0,1]`` -> ``keypoints [B,5K,2]`` in ``[-1,1]``.
* :class:`GeneratorGraph` — ``source [1,3,S,S]``, ``source_keypoints [1,5K,2]``,
  ``driving_keypoints [B,5K,2]`` (and ``bg_param [B,3,3]`` in the background variant) ->
  ``frames [B,3,S,S]`` in ``[0,1]``, ``occlusion [B,1,S,S]`` (the finest occlusion map, 1 = warped
  source, 0 = inpainted) and ``deformation [B,S/4,S/4,2]`` (absolute (x, y) source coordinates).
* :class:`AVDGraph` — ``source_keypoints [B,5K,2]``, ``driving_keypoints [B,5K,2]`` -> ``keypoints [B,5K,2]``.

``B`` is dynamic in every graph; ``S`` and ``K`` are fixed by the model.

Internal graphs (:data:`INTERNAL`: written to the backends' cache, not by ``tpsmm export``, not part of the
contract) split the generator so that what depends only on the source runs once per clip, as the torch
engine's :class:`~tpsmm.core.animation.engine.SourceCache` does:

* :class:`SourceGraph` (``source-cache``) — ``source [1,3,S,S]`` -> ``source_small [1,3,h,w]`` (the dense
  motion network's anti-aliased downscale, ``h = S x scale_factor``) and the inpainting encoder maps
  ``encoded_0 [1,C_0,S,S] .. encoded_N [1,C_N,S/2^N,S/2^N]`` (finest first, ``N`` = down blocks).
* :class:`CachedGeneratorGraph` (``generator-cached``, ``generator-cached-bg``) — ``source``, ``source_small``,
  ``encoded_0..N`` (all batch 1), ``source_keypoints [1,5K,2]``, ``driving_keypoints [B,5K,2]`` (and
  ``bg_param [B,3,3]``) -> the outputs of ``generator`` / ``generator-bg``.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["GRAPHS", "CONTRACT", "INTERNAL", "ENCODED", "graph_io", "batch_axes", "KeypointsGraph",
           "GeneratorGraph", "AVDGraph", "SourceGraph", "CachedGeneratorGraph"]

ENCODED = "encoded_*"
"""Placeholder in :data:`GRAPHS` for the encoder maps ``encoded_0 .. encoded_N`` (see :func:`graph_io`)."""
_GEN_OUT = ("frames", "occlusion", "deformation")
_CACHED_IN = ("source", "source_small", ENCODED, "source_keypoints", "driving_keypoints")

GRAPHS = {
    "keypoints": (("image",), ("keypoints",)),
    "generator": (("source", "source_keypoints", "driving_keypoints"), _GEN_OUT),
    "generator-bg": (("source", "source_keypoints", "driving_keypoints", "bg_param"), _GEN_OUT),
    "avd": (("source_keypoints", "driving_keypoints"), ("keypoints",)),
    "source-cache": (("source",), ("source_small", ENCODED)),
    "generator-cached": (_CACHED_IN, _GEN_OUT),
    "generator-cached-bg": (_CACHED_IN + ("bg_param",), _GEN_OUT),
}
"""Graph name -> (input names, output names), :data:`ENCODED` unexpanded. The file of graph ``g`` is ``g.onnx``."""
CONTRACT = ("keypoints", "generator", "generator-bg", "avd")
"""The graphs of ``tpsmm export`` (README, "Export contract")."""
INTERNAL = ("source-cache", "generator-cached", "generator-cached-bg")
"""The graphs only the backends' cache holds."""


def graph_io(name: str, networks) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(inputs, outputs)`` of graph ``name`` for ``networks``, :data:`ENCODED` expanded to one name per map."""
    maps = [f"encoded_{i}" for i in range(networks.inpainting_network.num_down_blocks + 1)]
    expand = lambda names: tuple(m for n in names for m in (maps if n == ENCODED else [n]))  # noqa: E731
    inputs, outputs = GRAPHS[name]
    return expand(inputs), expand(outputs)


def batch_axes(name: str, networks) -> dict[str, dict[int, str]]:
    """The dynamic axes of graph ``name``: ``B`` on every per-frame tensor; the per-clip ones (``source``,
    ``source_small``, ``encoded_*``, and ``source_keypoints`` except in ``avd``) keep batch 1."""
    inputs, outputs = graph_io(name, networks)
    per_clip = {"source", "source_small"} | ({"source_keypoints"} if name != "avd" else set())
    return {n: {0: "B"} for n in inputs + outputs if n not in per_clip and not n.startswith("encoded_")}


class KeypointsGraph(nn.Module):
    """The keypoint detector alone."""

    def __init__(self, networks) -> None:
        super().__init__()
        self.kp = networks.kp_detector

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.kp(image)


class GeneratorGraph(nn.Module):
    """Dense motion (TPS solve included) + inpainting for one source and a batch of driving keypoints."""

    def __init__(self, networks, *, background: bool = False) -> None:
        super().__init__()
        self.dm, self.inp, self.background = networks.dense_motion_network, networks.inpainting_network, background

    def forward(self, source: torch.Tensor, source_keypoints: torch.Tensor, driving_keypoints: torch.Tensor,
                bg_param: torch.Tensor | None = None):
        return self._generate(source, source_keypoints, driving_keypoints, bg_param)

    def _generate(self, source, source_keypoints, driving_keypoints, bg_param, *, source_small=None, encoded=None):
        """``(frames, occlusion, deformation)``; ``source_small`` / ``encoded`` are the source's cached
        downscale and encoder maps (``None``: computed from ``source`` here)."""
        kp_source = source_keypoints.expand(driving_keypoints.shape[0], -1, -1)
        motion = self.dm(source, driving_keypoints, kp_source, bg_param=bg_param, source_small=source_small)
        gen = self.inp(source, motion, encoded=encoded)
        return gen.prediction, motion.occlusion[-1], motion.deformation


class AVDGraph(nn.Module):
    """The AVD network: driving keypoints re-expressed on the source's identity."""

    def __init__(self, networks) -> None:
        super().__init__()
        self.avd = networks.avd_network

    def forward(self, source_keypoints: torch.Tensor, driving_keypoints: torch.Tensor) -> torch.Tensor:
        return self.avd(source_keypoints, driving_keypoints)


class SourceGraph(nn.Module):
    """``source [1,3,S,S]`` -> ``(source_small [1,3,h,w], encoded_0, ..., encoded_N)`` (finest map first)."""

    def __init__(self, networks) -> None:
        super().__init__()
        self.dm, self.inp = networks.dense_motion_network, networks.inpainting_network

    def forward(self, source: torch.Tensor):
        return (self.dm.downsample(source), *self.inp.encode(source))


class CachedGeneratorGraph(GeneratorGraph):
    """:class:`GeneratorGraph` on the outputs of :class:`SourceGraph`.

    Positional inputs: ``source``, ``source_small``, ``encoded_0..N``, ``source_keypoints``,
    ``driving_keypoints`` (and ``bg_param`` when ``background``), as :func:`graph_io` names them.
    """

    def __init__(self, networks, *, background: bool = False) -> None:
        super().__init__(networks, background=background)
        self.maps = self.inp.num_down_blocks + 1

    def forward(self, source: torch.Tensor, source_small: torch.Tensor, *rest: torch.Tensor):
        encoded, (source_keypoints, driving_keypoints, *bg) = list(rest[:self.maps]), rest[self.maps:]
        return self._generate(source, source_keypoints, driving_keypoints, bg[0] if self.background else None,
                              source_small=source_small, encoded=encoded)
