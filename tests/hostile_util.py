"""Helpers for the hostile-input tests: snapshots of a folder (every file's bytes) to prove nothing changed."""
from __future__ import annotations

import os


def snapshot(folder) -> dict[str, bytes]:
    """``{relative path: bytes}`` of every regular file under ``folder`` (links recorded by their target)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                out[rel] = b"->" + os.readlink(path).encode()
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    out[rel] = f.read()
            elif os.path.isdir(path):
                out[rel + "/"] = b""
    return out
