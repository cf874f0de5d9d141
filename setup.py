"""Package discovery for the one distribution ``tpsmm`` whose root is this folder.

setuptools' own ``find`` cannot map the repository root onto the package ``tpsmm`` without also installing
``core`` or ``trainer`` as top-level modules, so every folder below the package roots that holds an
``__init__.py`` becomes ``tpsmm.<folder>`` here; a new subpackage can never be left out of the wheel. This file
itself lies in the package's folder but is no module of it, so the build leaves it out (``tests/test_wheel.py``).
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOTS = ("core", "trainer", "tpsmm_nodes", "render")
HERE = Path(__file__).resolve().parent


def find_packages() -> list[str]:
    found = ["tpsmm"]
    for root in ROOTS:
        for init in sorted((HERE / root).rglob("__init__.py")):
            found.append(".".join(["tpsmm", *init.parent.relative_to(HERE).parts]))
    return found


class BuildPy(build_py):
    """The standard build, without ``tpsmm/setup.py``."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if (m[0], m[1]) != ("tpsmm", "setup")]


setup(packages=find_packages(), cmdclass={"build_py": BuildPy})
