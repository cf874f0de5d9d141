"""TPSMM ComfyUI nodes (classic V1 API): thin classes over :mod:`tpsmm.core`.

Socket types: ``TPSMM_MODEL`` (a loaded checkpoint), ``TPSMM_KEYPOINTS`` (:class:`~tpsmm.core.Keypoints`),
``TPSMM_MOTION`` (:class:`~tpsmm.core.Motion`) and ``TPSMM_CROP_BOX`` (:class:`~tpsmm.core.media.crop.CropBox`).
Importing this package works without ComfyUI; inside ComfyUI it registers the ``models/tpsmm`` folder.
"""
from __future__ import annotations

from . import comfy_compat
from .nodes_crop import Crop, PasteBack
from .nodes_face import FindFace
from .nodes_generate import Animate, Generate
from .nodes_loaders import LoadCheckpoint
from .nodes_motion import EstimateMotion, ExtractKeypoints
from .nodes_visualize import DrawKeypoints, VisualizeMotion

comfy_compat.register_model_folder()

NODE_CLASS_MAPPINGS = {
    "TPSMM_LoadCheckpoint": LoadCheckpoint,
    "TPSMM_ExtractKeypoints": ExtractKeypoints,
    "TPSMM_EstimateMotion": EstimateMotion,
    "TPSMM_Generate": Generate,
    "TPSMM_Animate": Animate,
    "TPSMM_DrawKeypoints": DrawKeypoints,
    "TPSMM_VisualizeMotion": VisualizeMotion,
    "TPSMM_Crop": Crop,
    "TPSMM_PasteBack": PasteBack,
    "TPSMM_FindFace": FindFace,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "TPSMM_LoadCheckpoint": "TPSMM Load Checkpoint",
    "TPSMM_ExtractKeypoints": "TPSMM Extract Keypoints",
    "TPSMM_EstimateMotion": "TPSMM Estimate Motion",
    "TPSMM_Generate": "TPSMM Generate",
    "TPSMM_Animate": "TPSMM Animate",
    "TPSMM_DrawKeypoints": "TPSMM Draw Keypoints",
    "TPSMM_VisualizeMotion": "TPSMM Visualize Motion",
    "TPSMM_Crop": "TPSMM Crop",
    "TPSMM_PasteBack": "TPSMM Paste Back",
    "TPSMM_FindFace": "TPSMM Find Face",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
