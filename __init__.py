"""tpsmm: Thin-Plate Spline Motion Model as a library, CLI and ComfyUI node pack.

As a ComfyUI custom-node pack (this folder cloned into ``ComfyUI/custom_nodes/``),
ComfyUI reads ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` from here.
Importing works without ComfyUI.
"""
__version__ = "0.1.0"

try:
    from .tpsmm_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except ImportError:  # pragma: no cover - nodes not built yet
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "__version__"]
