"""Atomic file output: write to a hidden sibling, rename onto the destination on success.

An error or Ctrl-C part-way leaves the destination untouched (an earlier file stays as it was) and
removes the temporary file. Files get the usual permissions (``0o666`` minus the umask), not the
``0o600`` of :func:`tempfile.mkstemp`, so shared installs can read what tpsmm writes.

Temporary names are ``.<name>.partial-<pid>-<random><ext>`` (``<name>`` shortened when the full name would
pass the file system's name limit), so a run that was killed (``SIGKILL``, power loss) leaves files the next
run on the same output recognises and removes (:func:`remove_stale_temps`: the writing process is gone).

Nothing here writes through a symbolic link or onto a device, FIFO or socket: :func:`check_replaceable`
refuses them, and :func:`atomic_write` calls it.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from typing import Callable

__all__ = ["UnsafeOutputError", "sibling_temp_path", "atomic_write", "discard", "check_replaceable",
           "remove_stale_temps", "temp_prefix"]

_NAME_MAX = 255
_MARK = ".partial-"


class UnsafeOutputError(ValueError):
    """An output path names something tpsmm must not replace (a link, a device, a FIFO, a socket)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_replaceable(path: str, *, what: str = "") -> None:
    """Refuse (:class:`UnsafeOutputError`) an existing ``path`` that is not a regular file or a folder.

    A symbolic link (even to a regular file), a character/block device, a FIFO or a socket is never
    written through nor replaced. ``what`` (e.g. ``"--out "``) prefixes the message.
    """
    path = os.fspath(path).rstrip("/" + os.sep) or os.sep
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnsafeOutputError(f"{what}{path}: cannot inspect ({exc.strerror or exc})") from None
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))
    for test, name in kinds:
        if test(mode):
            raise UnsafeOutputError(f"{what}{path}: is {name}; refusing to write to it (choose another path)")


def temp_prefix(path: str) -> str:
    """The name prefix of every temporary sibling of ``path`` (``.<name>.partial-``, the name shortened if long)."""
    base = os.path.basename(os.path.abspath(path))
    ext = os.path.splitext(base)[1]
    room = _NAME_MAX - len(_MARK) - len(ext) - 1 - 40  # pid, dash, random part and some slack
    if len(base.encode()) > room:
        base = base.encode()[:room].decode(errors="ignore")
    return f".{base}{_MARK}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(path: str) -> list[str]:
    """Remove temporary siblings of ``path`` left by a process that no longer runs; returns what was removed.

    Only names made by :func:`sibling_temp_path` for this very ``path`` (prefix, then ``<pid>-``) are touched,
    and only when that process is gone, so a concurrent run's temporaries stay.
    """
    parent = os.path.dirname(os.path.abspath(path))
    prefix = temp_prefix(path)
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    removed = []
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            discard(os.path.join(parent, name))
            removed.append(os.path.join(parent, name))
    return removed


def sibling_temp_path(path: str, *, directory: bool = False) -> str:
    """Create and return a hidden temporary file (or folder) next to ``path``, same extension.

    The parent folder is created if missing; stale temporaries of ``path`` from killed runs are removed
    first. The caller renames the result onto ``path`` on success and removes it (:func:`discard`) on failure.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    remove_stale_temps(path)
    prefix = f"{temp_prefix(path)}{os.getpid()}-"
    if directory:
        tmp = tempfile.mkdtemp(dir=parent, prefix=prefix)
        os.chmod(tmp, 0o777 & ~_umask())
        return tmp
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=prefix, suffix=os.path.splitext(path)[1])
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
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path``; the temp is removed on any failure.

    ``path`` must not be a link, device, FIFO or socket (:func:`check_replaceable`), nor a folder.
    """
    check_replaceable(path)
    if os.path.isdir(path):
        raise UnsafeOutputError(f"{path}: is a folder, not a file; refusing to replace it")
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
