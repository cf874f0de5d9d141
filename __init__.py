"""tpsmm: Thin-Plate Spline Motion Model as a library, CLI and ComfyUI node pack.

As a ComfyUI custom-node pack (this folder cloned into ``ComfyUI/custom_nodes/``), ComfyUI's V3 loader
calls :func:`comfy_entrypoint` and registers the nodes of :mod:`tpsmm.tpsmm_nodes` it returns. The nodes
are imported only then, so ``import tpsmm`` (the library) works without ComfyUI.
"""
__version__ = "0.1.0"

__all__ = ["comfy_entrypoint", "__version__"]


async def comfy_entrypoint():
    """ComfyUI's entry point for the pack: a ``ComfyExtension`` listing the TPSMM nodes."""
    from .tpsmm_nodes import TPSMMExtension  # relative: ComfyUI imports this pack by file path

    return TPSMMExtension()
