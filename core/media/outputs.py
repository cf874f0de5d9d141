"""Checks on output paths, made before any work starts (nothing rendered is thrown away at the end).

Every command that writes files states its outputs as ``(flag, path)`` pairs and its inputs as
``{path: description}``; :func:`check_outputs` refuses, with one line naming the flag and path:

* an unsupported extension (for video outputs);
* an output that is an input, or an output folder that holds an input (replacing the folder would
  delete it), or an output inside another output's folder;
* two outputs at the same place;
* an existing path without ``overwrite``; with ``overwrite``, anything but a regular file or a png
  folder this tool wrote (a symbolic link, device, FIFO or socket is never replaced);
* a parent that is a file, or a folder that cannot be written.

``/dev/null`` (:data:`os.devnull`) is accepted as "render and discard" and skips the other checks.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from .atomic import check_replaceable
from .video_writer import output_kind, owned_png_folder

__all__ = ["check_outputs", "check_writable_parent"]


def _real(path: str) -> str:
    return os.path.realpath(os.fspath(path).rstrip("/" + os.sep) or os.sep)


def _inside(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip(os.sep) + os.sep)


def check_writable_parent(path: str, *, what: str = "") -> None:
    """Refuse (``ValueError``) a path whose nearest existing ancestor is a file or a folder that cannot be written."""
    parent = os.path.dirname(os.path.abspath(os.fspath(path).rstrip("/" + os.sep) or os.sep))
    while not os.path.exists(parent):
        if os.path.lexists(parent):  # a dangling link in the way
            raise ValueError(f"{what}{path}: {parent} is a broken symbolic link")
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"{what}{path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what}{path}: cannot write in {parent} (permission denied)")


def _check_existing(flag: str, path: str, kind: str | None) -> None:
    """With ``overwrite``: only a regular file, or for a png-folder output a folder of our numbered pngs."""
    check_replaceable(path, what=f"{flag} ")
    p = os.fspath(path).rstrip("/" + os.sep)
    if os.path.isdir(p):
        if kind != "png-folder":
            raise ValueError(f"{flag} {path}: is a folder, not a file; refusing to replace it")
        stray = owned_png_folder(p)
        if stray is not None:
            raise ValueError(f"{flag} {path}: refusing to replace a folder that holds other files ({stray!r})")


def check_outputs(outputs: Sequence[tuple[str, str]], *, inputs: Mapping[str, str], overwrite: bool,
                  kinds: bool = True) -> None:
    """Validate ``outputs`` (``[(flag, path)]``) against ``inputs`` (``{path: "the source image", ...}``).

    Args:
        kinds: the outputs are video outputs (:func:`~tpsmm.core.media.video_writer.output_kind` must accept
            them); ``False`` for other files (checkpoints, images, metric files).

    Raises ``ValueError`` (one line: flag, path, problem); see the module docstring for what is refused.
    """
    sources = {_real(p): what for p, what in inputs.items() if p}
    seen: dict[str, tuple[str, str | None]] = {}
    for flag, path in outputs:
        if os.fspath(path) == os.devnull:
            continue
        kind = output_kind(path) if kinds else None
        real = _real(path)
        if real in sources:
            raise ValueError(f"{flag} {path}: is {sources[real]}; refusing to overwrite an input")
        for src, what in sources.items():
            if _inside(src, real):
                raise ValueError(f"{flag} {path}: this folder holds {what} ({src}); refusing to replace it")
        if real in seen:
            raise ValueError(f"{flag} {path}: same path as {seen[real][0]}")
        for other, (other_flag, other_kind) in seen.items():
            if _inside(real, other) or _inside(other, real):
                outer = (other_flag, other) if _inside(real, other) else (flag, real)
                raise ValueError(f"{flag} {path}: lies inside or around the {outer[0]} output {outer[1]}; "
                                 "give each output its own place")
        seen[real] = (flag, kind)
        if os.path.lexists(os.fspath(path).rstrip("/" + os.sep)):
            if not overwrite:
                raise ValueError(f"{flag} {path}: already exists (pass --overwrite to replace it)")
            _check_existing(flag, path, kind)
        check_writable_parent(path, what=f"{flag} ")
