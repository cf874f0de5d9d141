"""``tpsmm`` command line: dispatches to the sub-command modules.

Every sub-command module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` (``args -> exit code``). Errors from bad input are reported as one line; set
``TPSMM_DEBUG=1`` for the full traceback.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

# sub-command modules, in --help order
COMMAND_MODULES = (
    "tpsmm.core.cli",           # animate, convert, info
    "tpsmm.trainer.cli",        # train, train-avd, eval, make-dataset
    "tpsmm.tpsmm_nodes.render.cli",  # render
    "tpsmm.demo",               # demo
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="tpsmm", description="Thin-Plate Spline Motion Model: animate, convert, train, render.")
    parser.add_argument("--version", action="version", version=f"tpsmm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("tpsmm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one-line errors for users; full traceback on request
        if os.environ.get("TPSMM_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        print(f"tpsmm {args.command}: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
