"""The distribution a real (non-editable) install gets: the wheel holds every module of the package, the demo
assets and the saved workflows, all under ``tpsmm/``; nothing else becomes a top-level package.

CI installs in editable mode, where a module left out of the wheel would go unnoticed; so the wheel is built here
(``pip wheel --no-deps --no-build-isolation``, from a copy of the repository as git would commit it, into a temporary
folder: nothing is written into the source tree) and its file list compared with the repository's.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_fresh_clone import fresh_clone

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_ROOTS = ("core", "trainer", "tpsmm_nodes", "render")
ENTRY_FILES = ("__init__.py", "__main__.py", "demo.py")
DATA = ("assets/demo/*", "workflows/*.json")


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    work = tmp_path_factory.mktemp("wheel")
    clone = fresh_clone(work / "src")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "-w", str(work / "dist"), str(clone)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    (wheel,) = (work / "dist").glob("tpsmm-*.whl")
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def expected_files() -> set[str]:
    """``tpsmm/<path>`` of every module, demo asset and workflow of the repository."""
    found = {p for root in PACKAGE_ROOTS for p in (ROOT / root).rglob("*.py") if "__pycache__" not in p.parts}
    found |= {ROOT / name for name in ENTRY_FILES}
    found |= {p for pattern in DATA for p in ROOT.glob(pattern)}
    return {"tpsmm/" + p.relative_to(ROOT).as_posix() for p in found}


def test_wheel_holds_every_module_and_data_file(wheel_files):
    expected = expected_files()
    assert len(expected) > 100 and "tpsmm/core/animation/pipeline.py" in expected
    assert "tpsmm/assets/demo/model.safetensors" in expected and "tpsmm/workflows/animate_basic_api.json" in expected
    assert sorted(expected - wheel_files) == []


def test_wheel_holds_nothing_else(wheel_files):
    tops = {name.split("/")[0] for name in wheel_files}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"tpsmm"}          # no top-level core/, trainer/
    package = {n for n in wheel_files if n.startswith("tpsmm/")}
    assert sorted(package - expected_files()) == []                                # no setup.py, tests, tools
