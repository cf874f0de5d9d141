"""TPSMM ComfyUI nodes on ComfyUI's V3 schema (``comfy_api.latest``): thin classes over :mod:`tpsmm.core`.

:data:`NODES` lists the node classes; :class:`TPSMMExtension` hands them to ComfyUI through the one
``comfy_entrypoint`` of the pack (the repository root's ``__init__.py``). Socket types are declared in
:mod:`.sockets`. Importing this package needs ComfyUI's ``comfy_api`` on ``sys.path`` (ComfyUI puts its
root there); inside ComfyUI it registers the ``models/tpsmm`` folder.
"""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from . import comfy_compat
from .nodes_crop import Crop, PasteBack
from .nodes_face import FindFace
from .nodes_generate import Animate, Generate
from .nodes_loaders import LoadCheckpoint
from .nodes_motion import EstimateMotion, ExtractKeypoints
from .nodes_visualize import DrawKeypoints, VisualizeMotion

comfy_compat.register_model_folder()

NODES: list[type[io.ComfyNode]] = [LoadCheckpoint, ExtractKeypoints, EstimateMotion, Generate, Animate, DrawKeypoints,
                                   VisualizeMotion, Crop, PasteBack, FindFace]


class TPSMMExtension(ComfyExtension):
    """The pack as ComfyUI's V3 loader sees it."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


__all__ = ["NODES", "TPSMMExtension"]
