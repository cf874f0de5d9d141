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

Every import statement counts, also those inside functions. Every package directly in the root or in ``core/`` needs
a layer here: a new one fails the test until it is listed. Nothing is written: the checks read source text.
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
CLOSED = ("tpsmm", "tpsmm.core")        # every module or package directly inside these must be listed in LAYERS,
ENTRY_POINTS = ("tpsmm.__main__", "tpsmm.demo")         # except these root files of the root's layer
NOT_PACKAGED = ("setup.py",)            # root files that are no module of the package


def module_name(rel: Path) -> str:
    """``tpsmm.<dotted>`` of a file path relative to the repository root."""
    parts = list(rel.with_suffix("").parts)
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


def sources() -> dict[Path, str]:
    """``relative path -> source text`` of every Python file of the package: the root files and everything under
    each root folder that is a package (holds an ``__init__.py``)."""
    files = [p for p in ROOT.glob("*.py") if p.name not in NOT_PACKAGED]
    for folder in sorted(p.parent for p in ROOT.glob("*/__init__.py")):
        files += folder.rglob("*.py")
    return {p.relative_to(ROOT): p.read_text(encoding="utf-8") for p in sorted(files)}


def imports_of(rel: Path, text: str) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in the file ``rel`` (source ``text``) that names a ``tpsmm``
    module."""
    tree = ast.parse(text, filename=str(rel))
    me = module_name(rel)
    package = me if rel.name == "__init__.py" else me.rpartition(".")[0]
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


def unlisted(files: dict[Path, str]) -> list[str]:
    """Modules with no layer of their own: directly inside a :data:`CLOSED` package, or in a package below it,
    without an entry in LAYERS (a new ``core/`` package must be given a layer)."""
    bad = []
    for rel in files:
        me = module_name(rel)
        if layer_of(me) in CLOSED and me not in CLOSED + ENTRY_POINTS:
            bad.append(f"{rel}: {me} has no layer: add its package to LAYERS")
    return bad


def violations(files: dict[Path, str]) -> list[str]:
    bad = []
    for rel, text in files.items():
        me = module_name(rel)
        mine = layer_of(me)
        for line, target in imports_of(rel, text):
            theirs = layer_of(target)
            if theirs is None or theirs == mine:
                continue
            if LAYERS[theirs] >= LAYERS[mine]:
                bad.append(f"{rel}:{line}: {me} ({mine}, layer {LAYERS[mine]}) imports "
                           f"{target} ({theirs}, layer {LAYERS[theirs]})")
    return bad


def test_every_source_file_belongs_to_a_listed_layer():
    files = sources()
    assert len(files) > 40 and Path("core/geometry/tps.py") in files and Path("demo.py") in files
    assert unlisted(files) == []


def test_imports_point_down_only():
    assert violations(sources()) == []


def test_the_checker_catches_an_upward_import():
    """A geometry module importing the animation layer must be reported (the check can fail); in memory only."""
    probe = {**sources(), Path("core/geometry/_layer_probe.py"): "from ..animation import engine\n"}
    assert any("_layer_probe" in v and "layer 3" in v for v in violations(probe))


@pytest.mark.parametrize("new_file", ["core/newpack/__init__.py", "core/newpack/thing.py", "core/loose.py",
                                      "newroot/__init__.py", "newroot.py"])
def test_the_checker_catches_a_package_without_a_layer(new_file):
    """A new package or module beside the listed ones (in core/ or at the root) fails until it gets a layer."""
    probe = {**sources(), Path(new_file): "import torch\n"}
    assert [v for v in unlisted(probe) if v.startswith(new_file)] != []


@pytest.mark.parametrize("module, layer", [("tpsmm.core.geometry.tps", "tpsmm.core.geometry"),
                                           ("tpsmm.core", "tpsmm.core"),
                                           ("tpsmm.core.animation.pipeline", "tpsmm.core.animation"),
                                           ("tpsmm.trainer.synthetic.scenes", "tpsmm.trainer"),
                                           ("numpy", None)])
def test_layer_of(module, layer):
    assert layer_of(module) == layer
