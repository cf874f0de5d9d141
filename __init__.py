"""tpsmm: Thin-Plate Spline Motion Model as a library, CLI and ComfyUI node pack.

As a ComfyUI custom-node pack (this folder cloned into ``ComfyUI/custom_nodes/``),
ComfyUI reads ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` from here. They are loaded
on first access (PEP 562), so ``import tpsmm.core`` does not import the node pack; importing works
without ComfyUI, and a broken node module fails loudly instead of registering nothing.
"""
__version__ = "0.1.0"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "__version__"]


def __getattr__(name):
    if name in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
        from . import tpsmm_nodes  # relative: ComfyUI imports this pack by file path

        return getattr(tpsmm_nodes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
