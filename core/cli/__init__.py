"""Command-line layer of the core: ``tpsmm animate``, ``tpsmm convert``, ``tpsmm info`` and ``tpsmm export``."""
from __future__ import annotations

from .animate import register as _register_animate
from .convert_info import register as _register_convert_info
from .export import register as _register_export

__all__ = ["register"]


def register(sub) -> None:
    """Add ``convert``, ``info`` and ``animate`` to ``sub`` (an argparse sub-parsers object)."""
    _register_convert_info(sub)
    _register_animate(sub)
    _register_export(sub)
