"""Load a PyTorch file (``torch.save``: ``.pth``, ``.pth.tar``) safely: no code, no zip bombs, one-line errors.

:func:`load_tensors` is the one place tpsmm calls ``torch.load``:

* ``weights_only=True``: only tensors and plain containers are unpickled, never code;
* before anything is inflated, the zip records' *uncompressed* sizes (from the zip directory, which
  is also what the readers obey) are checked: the pickle (``data.pkl``) must be at most
  :data:`MAX_PICKLE` bytes, each tensor record ``data/<key>`` at most what the pickle's storage
  entries say it holds (elements x element size), every other record at most :data:`MAX_OTHER` bytes.
  A 2 MB file whose record inflates to 2 GB is refused without reading that record;
* torch's own warnings (e.g. "please file an issue" for a foreign pickle protocol) are not shown: the
  caller gets one :class:`ArchiveError` line instead.

Files in torch's legacy (non-zip) format are loaded as they are (they hold no compressed records).
"""
from __future__ import annotations

import os
import pickle
import pickletools
import warnings
import zipfile

import torch

__all__ = ["ArchiveError", "MAX_PICKLE", "MAX_OTHER", "check_archive", "load_tensors"]

MAX_PICKLE = 64 << 20      # bytes: the object layout of a checkpoint (a real one's is a few hundred KB)
MAX_OTHER = 1 << 20        # bytes: version, byteorder and other small records
_ITEM = {"Double": 8, "Float": 4, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1, "Byte": 1,
         "Bool": 1, "ComplexDouble": 16, "ComplexFloat": 8, "QInt8": 1, "QUInt8": 1, "QInt32": 4, "Untyped": 1}
_PUSH_STR = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_PUSH_INT = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"}


class ArchiveError(ValueError):
    """The file is not a loadable tensor file, or claims more memory than its tensors can need."""


def _storage_sizes(data: bytes) -> dict[str, int]:
    """``{record key: bytes}`` from the pickle's persistent ids ``('storage', <type>, key, location, numel)``.

    Read with :func:`pickletools.genops` (nothing is executed): string/int/global pushes (``GLOBAL``, and
    ``STACK_GLOBAL`` of protocol 4+) and the memo (``BINPUT``/``MEMOIZE``/``BINGET``) are followed, each
    ``MARK ... TUPLE`` of five items is looked at.
    """
    memo, marks, last, sizes = {}, [], None, {}
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in _PUSH_STR or name in _PUSH_INT or name == "GLOBAL":
            last = arg if name != "GLOBAL" else ("global", arg)
        elif name == "STACK_GLOBAL" and marks and len(marks[-1]) >= 2:   # protocol 4+: module, name on the stack
            last = ("global", " ".join(map(str, marks[-1][-2:])))
            del marks[-1][-2:]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            last = memo.get(arg)
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = last
            continue
        elif name == "MEMOIZE":
            memo[len(memo)] = last
            continue
        elif name == "MARK":
            marks.append([])
            continue
        elif name == "TUPLE" and marks:
            items = marks.pop()
            if len(items) == 5 and items[0] == "storage" and isinstance(items[1], tuple) and isinstance(items[4], int):
                kind = str(items[1][1]).rsplit(" ", 1)[-1].removesuffix("Storage")
                need = max(0, items[4]) * _ITEM.get(kind, 16)
                sizes[str(items[2])] = max(sizes.get(str(items[2]), 0), need)
            last = None
        else:
            last = None
        if marks:
            marks[-1].append(last)
    return sizes


def check_archive(path: str) -> None:
    """Refuse (:class:`ArchiveError`) a torch zip file whose records would inflate past what they can need."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        return   # legacy format, or not a zip at all: torch.load decides
    with archive:
        records = archive.infolist()
        pickles = [r for r in records if r.filename.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ArchiveError(f"{path}: not a PyTorch checkpoint ({len(pickles)} data.pkl records in the zip)")
        if pickles[0].file_size > MAX_PICKLE:
            raise ArchiveError(f"{path}: refused: its object layout (data.pkl) would take {pickles[0].file_size} "
                               f"bytes, more than the {MAX_PICKLE >> 20} MiB any checkpoint needs")
        try:
            sizes = _storage_sizes(archive.read(pickles[0]))
        except Exception as exc:  # noqa: BLE001 - any unreadable pickle gets the same line
            raise ArchiveError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__} in data.pkl)") \
                from None
        prefix = pickles[0].filename[:-len("data.pkl")]
        for record in records:
            name = record.filename[len(prefix):] if record.filename.startswith(prefix) else record.filename
            key = name[len("data/"):] if name.startswith("data/") else None
            allowed = sizes.get(key, 0) if key is not None else (MAX_PICKLE if record is pickles[0] else MAX_OTHER)
            if record.file_size > allowed:
                held = f"its tensors need {allowed} bytes" if key is not None else f"at most {allowed} bytes expected"
                raise ArchiveError(f"{path}: refused: record {record.filename!r} would inflate to {record.file_size} "
                                   f"bytes, but {held} (a zip bomb or a damaged file)")


def load_tensors(path: str | os.PathLike, *, what: str = "") -> object:
    """``torch.load(path, weights_only=True, map_location='cpu')`` after :func:`check_archive`.

    Raises:
        ArchiveError: one line naming ``path`` (and ``what``, e.g. ``"YuNet weights"``): unreadable, foreign
            objects in the pickle, or records larger than their tensors.
    """
    path = os.fspath(path)
    label = f"{path}: " + (f"not {what}: " if what else "")
    check_archive(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise ArchiveError(f"{label}refused to load: the file contains objects other than tensors and plain "
                           f"containers (weights_only=True): {first}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file fails anywhere in torch's readers: one line for all
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ArchiveError(f"{label}not a readable PyTorch file ({exc.__class__.__name__}: {text[:160]})") from None
