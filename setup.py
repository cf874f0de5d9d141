"""Package discovery for the one distribution ``tpsmm`` whose root is this folder.

setuptools' own ``find`` cannot map the repository root onto the package ``tpsmm`` without also installing
``core`` or ``trainer`` as top-level modules, so every folder below the package roots that holds an
``__init__.py`` becomes ``tpsmm.<folder>`` here; a new subpackage can never be left out of the wheel.
"""
from pathlib import Path

from setuptools import setup

ROOTS = ("core", "trainer", "tpsmm_nodes", "render")
HERE = Path(__file__).resolve().parent


def find_packages() -> list[str]:
    found = ["tpsmm"]
    for root in ROOTS:
        for init in sorted((HERE / root).rglob("__init__.py")):
            found.append(".".join(["tpsmm", *init.parent.relative_to(HERE).parts]))
    return found


setup(packages=find_packages())
