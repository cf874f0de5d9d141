"""Atomic file output: write to a hidden sibling, rename onto the destination on success.

An error or Ctrl-C part-way leaves the destination untouched (an earlier file stays as it was) and
removes the temporary file. Files get the usual permissions (``0o666`` minus the umask), not the
``0o600`` of :func:`tempfile.mkstemp`, so shared installs can read what tpsmm writes.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Callable

__all__ = ["sibling_temp_path", "atomic_write", "discard"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sibling_temp_path(path: str, *, directory: bool = False) -> str:
    """Create and return a hidden temporary file (or folder) next to ``path``, same extension.

    The parent folder is created if missing. The caller renames it onto ``path`` on success and
    removes it (:func:`discard`) on failure.
    """
    parent, base = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    if directory:
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{base}.partial-")
        os.chmod(tmp, 0o777 & ~_umask())
        return tmp
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{base}.partial-", suffix=os.path.splitext(base)[1])
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    return tmp


def discard(tmp: str) -> None:
    """Remove a temporary file or folder made by :func:`sibling_temp_path` (missing is fine)."""
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.lexists(tmp):
        os.remove(tmp)


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path``; the temp is removed on any failure."""
    tmp = sibling_temp_path(path)
    try:
        write(tmp)
        # writers that replace the file themselves (safetensors >= 0.6 writes its own temp file and renames
        # it) leave mkstemp's 0o600; give the result the usual permissions again
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise
