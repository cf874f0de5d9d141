"""The architecture, enforced: imports between the layers of the package point one way only.

Layers, lowest first (a module may import its own package and strictly lower ranks, never higher
or sideways):

    0  core.geometry, core.media,       coordinates, TPS, Lucas-Kanade | image/video IO, crops, atomic files,
       core.device                      drawing | device and dtype names
    1  core.networks, core.face         blocks, precision policy, the five networks | face detection and framing
    2  core.model                       config, checkpoints, structures, the network container
    2.5 core.backends                   ONNX export, graph cache, ONNX Runtime / OpenVINO runners
    3  core.animation                   engine, motion transfer, smoothing, high-res, THE pipeline
    4  core.cli, core (package root)    argparse -> options -> pipeline -> writer; the public API
    5  trainer, tpsmm_nodes, render     never import each other
    6  tpsmm (root), __main__, demo     entry points

Every import statement counts, also those inside functions.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "tpsmm.core.geometry": 0, "tpsmm.core.media": 0, "tpsmm.core.device": 0, "tpsmm.core.networks": 1,
    "tpsmm.core.face": 1, "tpsmm.core.model": 2, "tpsmm.core.backends": 2.5,
    "tpsmm.core.animation": 3, "tpsmm.core.cli": 4, "tpsmm.core": 4, "tpsmm.trainer": 5,
    "tpsmm.tpsmm_nodes": 5, "tpsmm.render": 5, "tpsmm": 6,
}
SOURCES = ["core", "trainer", "tpsmm_nodes", "render", "__init__.py", "__main__.py", "demo.py"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["tpsmm", *parts])


def layer_of(module: str) -> str | None:
    """The longest layer prefix of a ``tpsmm`` module (``None`` for outside modules)."""
    best = None
    for name in LAYERS:
        if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best)):
            best = name
    return best


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in ``path`` that names a ``tpsmm`` module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or not node.level:
                # `from . import x` / `from pkg import x`: x may be a submodule
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, mod) for line, mod in found if mod == "tpsmm" or mod.startswith("tpsmm.")]


def python_files() -> list[Path]:
    files = []
    for name in SOURCES:
        p = ROOT / name
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return files


def violations() -> list[str]:
    bad = []
    for path in python_files():
        me = module_name(path)
        mine = layer_of(me)
        for line, target in imports_of(path):
            theirs = layer_of(target)
            if theirs is None or theirs == mine:
                continue
            if LAYERS[theirs] >= LAYERS[mine]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {me} ({mine}, layer {LAYERS[mine]}) imports "
                           f"{target} ({theirs}, layer {LAYERS[theirs]})")
    return bad


def test_every_source_file_belongs_to_a_layer():
    assert [p for p in python_files() if layer_of(module_name(p)) is None] == []
    assert len(python_files()) > 40


def test_imports_point_down_only():
    assert violations() == []


def test_the_checker_catches_an_upward_import():
    """A geometry module importing the animation layer must be reported (the check can fail)."""
    fake = ROOT / "core" / "geometry" / "_layer_probe.py"
    try:
        fake.write_text("from ..animation import engine\n", encoding="utf-8")
        found = violations()
    finally:
        fake.unlink()
    assert any("_layer_probe" in v and "layer 3" in v for v in found)


@pytest.mark.parametrize("module, layer", [("tpsmm.core.geometry.tps", "tpsmm.core.geometry"),
                                           ("tpsmm.core", "tpsmm.core"),
                                           ("tpsmm.core.animation.pipeline", "tpsmm.core.animation"),
                                           ("numpy", None)])
def test_layer_of(module, layer):
    assert layer_of(module) == layer
