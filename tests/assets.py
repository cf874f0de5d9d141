"""Test assets that are not in the repository: a real ComfyUI and the face assets. The one place that finds them.

Each asset is looked up in this order:

1. its environment variable (``TPSMM_COMFYUI``, ``TPSMM_FACES``); a value that does not hold the asset is an
   error, never a silent fallback;
2. the folder beside the clone (``../shared/comfyui``, ``../shared/faces``);
3. otherwise the test that needs it is skipped with one line saying how to enable it, except in CI
   (``CI=true``), where a missing asset fails the test: a green CI run means that every test ran.

Tests reach the assets through the ``comfyui_dir`` and ``faces`` fixtures of ``tests/conftest.py``.
"""
from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FACE_FILES = ("yunet_final.pth", "portrait.png", "two_faces.png", "crowd.jpg", "talking.mp4")


def in_ci() -> bool:
    """True where the environment says it is CI (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(message: str, *, module: bool = False) -> None:
    """Skip the running test (``module``: the whole test module) with ``message``, or fail it in CI."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: missing assets fail instead of skipping)", pytrace=False)
    pytest.skip(message, allow_module_level=module)


def comfyui_snapshot(path: Path) -> Path | None:
    """The ComfyUI that ``path`` holds: a folder with ``main.py`` (returned as is), a ``ComfyUI-*.tar.gz``
    snapshot, or a folder holding such snapshots (the newest by name); ``None`` when it holds none."""
    if (path / "main.py").is_file():
        return path
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        return path
    tarballs = sorted(path.glob("ComfyUI-*.tar.gz")) if path.is_dir() else []
    return tarballs[-1] if tarballs else None


def face_folder(path: Path) -> Path | None:
    """``path`` when it holds every face asset the tests read (:data:`FACE_FILES`), else ``None``."""
    return path if all((path / name).is_file() for name in FACE_FILES) else None


@dataclass(frozen=True)
class Asset:
    """One external asset. ``what``: its name in messages; ``variable``: the environment variable that points at
    it; ``holds``: what a candidate path must hold (``path -> found path or None``); ``expects``: that, in words."""

    what: str
    variable: str
    beside: Path
    holds: Callable[[Path], Path | None]
    expects: str

    def find(self) -> Path | None:
        """The asset, or ``None`` when neither the variable nor the folder beside the clone has it.

        Raises ``pytest.fail`` when the variable is set but does not hold the asset."""
        value = os.environ.get(self.variable)
        if value:
            found = self.holds(Path(value).expanduser())
            if found is None:
                pytest.fail(f"{self.variable}={value}: expected {self.expects}", pytrace=False)
            return found
        return self.holds(self.beside)

    def require(self, *, module: bool = False) -> Path:
        """The asset; skips the test (``module``: the test module) with one line saying how to provide it, or
        fails it in CI."""
        found = self.find()
        if found is None:
            missing(f"{self.what} not found: set {self.variable} to {self.expects}, "
                    f"or put it in ../{self.beside.relative_to(REPO.parent)} beside the clone", module=module)
        return found


COMFYUI = Asset("ComfyUI", "TPSMM_COMFYUI", SHARED / "comfyui", comfyui_snapshot,
                "a ComfyUI folder (with main.py) or its ComfyUI-*.tar.gz snapshot")
FACES = Asset("the face assets", "TPSMM_FACES", SHARED / "faces", face_folder,
              "a folder holding " + ", ".join(FACE_FILES))


def comfyui_folder(dest: Path) -> Path:
    """A ComfyUI folder with ``main.py`` to start: the checkout itself, or the snapshot unpacked into ``dest``."""
    found = COMFYUI.require()
    if (found / "main.py").is_file():
        return found
    with tarfile.open(found) as tar:
        tar.extractall(dest, filter="data")
    (main,) = dest.glob("*/main.py")
    return main.parent
