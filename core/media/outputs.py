"""Checks on output paths, made before any work starts (nothing rendered is thrown away at the end).

Every command that writes files states its outputs as ``(flag, path)`` pairs and its inputs as
``{path: description}``; :func:`check_outputs` refuses, with one line naming the flag and path, an
output that is an input, two outputs at the same place, an unsupported extension, and an existing
file unless ``overwrite`` is set.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from .video_writer import output_kind

__all__ = ["check_outputs"]


def _real(path: str) -> str:
    return os.path.realpath(os.fspath(path).rstrip("/" + os.sep) or os.sep)


def check_outputs(outputs: Sequence[tuple[str, str]], *, inputs: Mapping[str, str], overwrite: bool) -> None:
    """Validate ``outputs`` (``[(flag, path)]``) against ``inputs`` (``{path: "the source image", ...}``).

    Raises ``ValueError`` (one line: flag, path, problem) for an unsupported output kind, an output
    that is one of the inputs, two outputs at the same path, or an existing path without ``overwrite``.
    """
    sources = {_real(p): what for p, what in inputs.items() if p}
    seen: dict[str, str] = {}
    for flag, path in outputs:
        output_kind(path)
        real = _real(path)
        if real in sources:
            raise ValueError(f"{flag} {path}: is {sources[real]}; refusing to overwrite an input")
        if real in seen:
            raise ValueError(f"{flag} {path}: same path as {seen[real]}")
        seen[real] = flag
        if os.path.lexists(os.fspath(path).rstrip("/" + os.sep)) and not overwrite:
            raise ValueError(f"{flag} {path}: already exists (pass --overwrite to replace it)")
