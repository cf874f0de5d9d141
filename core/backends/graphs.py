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
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["GRAPHS", "KeypointsGraph", "GeneratorGraph", "AVDGraph"]

GRAPHS = {
    "keypoints": (("image",), ("keypoints",)),
    "generator": (("source", "source_keypoints", "driving_keypoints"), ("frames", "occlusion", "deformation")),
    "generator-bg": (("source", "source_keypoints", "driving_keypoints", "bg_param"),
                     ("frames", "occlusion", "deformation")),
    "avd": (("source_keypoints", "driving_keypoints"), ("keypoints",)),
}
"""Graph name -> (input names, output names). The file of graph ``g`` is ``g.onnx``."""


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
        kp_source = source_keypoints.expand(driving_keypoints.shape[0], -1, -1)
        motion = self.dm(source, driving_keypoints, kp_source, bg_param=bg_param)
        gen = self.inp(source, motion)
        return gen.prediction, motion.occlusion[-1], motion.deformation


class AVDGraph(nn.Module):
    """The AVD network: driving keypoints re-expressed on the source's identity."""

    def __init__(self, networks) -> None:
        super().__init__()
        self.avd = networks.avd_network

    def forward(self, source_keypoints: torch.Tensor, driving_keypoints: torch.Tensor) -> torch.Tensor:
        return self.avd(source_keypoints, driving_keypoints)
