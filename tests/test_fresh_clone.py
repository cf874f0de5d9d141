"""The README's commands on a fresh clone with no ``../shared`` beside it: the asset tests skip with the README's
reasons and the run passes; under ``CI=true`` they fail instead.

What this covers, honestly, in well under a minute:

* the clone is the repository as git would commit it (tracked files and untracked ones that are not ignored, from
  the working tree), copied into an empty temporary folder: nothing beside it, no ``../shared``;
* install: the current environment's packages, with the clone first on the path (``PYTHONPATH``), instead of a
  new venv (reinstalling torch takes minutes); ``test_wheel.py`` checks what an install of the package holds, and
  here every command of the README's set-up must stay inside the repository;
* test: the README's ``python -m pytest -q``, on the test files that use external assets (the README names them;
  every test asking for an asset fixture is in them, checked below) rather than the whole suite, which needs no
  asset and runs in CI anyway.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSET_TESTS = ("tests/test_face*.py", "tests/test_render*.py", "tests/test_nodes*.py", "tests/test_streamed_video.py",
               "tests/test_audio.py", "tests/test_animate_sound.py", "tests/test_browser.py",
               "tests/test_hostile_faces.py")                                    # as the README lists them
ASSET_FIXTURES = {"comfyui_dir", "faces", "detector", "photo", "talking"}           # tests/conftest.py
SKIPS = {"ComfyUI not found: set TPSMM_COMFYUI to", "the face assets not found: set TPSMM_FACES to"}


def fresh_clone(into: Path) -> Path:
    """The repository's committable files copied into ``into/tpsmm`` (so that ``PYTHONPATH=into`` imports it)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    clone = into / "tpsmm"
    for name in filter(None, listed):
        if (ROOT / name).is_file():                                     # a deleted, not yet committed file is gone
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    return clone


def pytest_in(clone: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m pytest -q ARGS`` in ``clone`` with no asset variables, the clone first on the path, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "TPSMM_COMFYUI", "TPSMM_FACES", "PYTHONPATH")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=clone,
                          env={**base, "PYTHONPATH": str(clone.parent), **env}, capture_output=True, text=True,
                          timeout=300)


def asset_test_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for pattern in ASSET_TESTS for p in root.glob(pattern))


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    clone = fresh_clone(tmp_path_factory.mktemp("fresh"))
    assert not (clone.parent / "shared").exists()
    return clone


def test_readme_set_up_names_no_file_outside_the_repository():
    readme = (ROOT / "README.md").read_text()
    set_up = readme[readme.index("## Set up"):readme.index("\n## ", readme.index("## Set up") + 1)]
    commands = [ln for block in re.findall(r"```bash\n(.*?)```", set_up, re.S) for ln in block.splitlines()]
    assert "python -m pytest -q" in commands and 'pip install -e ".[test]"' in " ".join(commands)
    assert [c for c in commands if "../" in c.split("#")[0]] == []
    assert "../" not in (ROOT / ".ci" / "run").read_text()


def test_every_test_using_an_asset_is_in_the_asset_test_files():
    users = set()
    for path in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and ASSET_FIXTURES & {a.arg for a in node.args.args}:
                users.add(str(path.relative_to(ROOT)))
    users -= {"tests/conftest.py"}
    assert users and users <= set(asset_test_files(ROOT))


def test_readme_test_command_passes_with_the_documented_skips(clone):
    probe = subprocess.run([sys.executable, "-c", "import tpsmm; print(tpsmm.__file__)"], capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(clone.parent)}, cwd=clone.parent)
    assert probe.stdout.strip() == str(clone / "__init__.py")          # the clone is what the tests import
    run = pytest_in(clone, *asset_test_files(clone))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary, summary
    skipped = [ln for ln in run.stdout.splitlines() if ln.startswith("SKIPPED")]
    reasons = {reason for ln in skipped for reason in SKIPS if reason in ln}
    assert reasons == SKIPS, run.stdout[-3000:]                          # both kinds reported, one line each
    assert all(any(reason in ln for reason in SKIPS) for ln in skipped), skipped      # and no other skip
    assert "beside the clone" in skipped[0] and "\n" not in skipped[0]


def test_missing_assets_fail_in_ci(clone):
    run = pytest_in(clone, "tests/test_face.py::test_weights_lookup_order",
                    "tests/test_render_comfyui.py::test_mixed_workflow_renders_through_comfyui_started_here", CI="true")
    assert run.returncode == 1 and "2 errors" in run.stdout, run.stdout[-3000:]      # failed at fixture set-up
    assert run.stdout.count("CI=true: missing assets fail instead of skipping") >= 2
    bad = pytest_in(clone, "tests/test_face.py::test_weights_lookup_order", TPSMM_FACES=str(clone / "nowhere"))
    assert bad.returncode == 1 and f"TPSMM_FACES={clone / 'nowhere'}: expected a folder holding" in bad.stdout
