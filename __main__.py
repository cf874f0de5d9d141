"""``tpsmm`` command line: dispatches to the sub-command modules.

Every sub-command module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` (``args -> exit code``). Errors from bad input are reported as one line; set
``TPSMM_DEBUG=1`` for the full traceback.

Before a command runs, every numeric option must be finite (``nan``/``inf`` are refused, naming the flag), and
``SIGTERM`` is turned into the same clean stop as Ctrl-C: temporary files are removed, nothing half-written is
left, the exit status is 143.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import re
import signal
import sys
import threading

# sub-command modules, in --help order
COMMAND_MODULES = (
    "tpsmm.core.cli",           # animate, convert, info
    "tpsmm.trainer.cli",        # train, train-avd, eval, make-dataset
    "tpsmm.render.cli",  # render
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


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on ``SIGTERM``, so every ``finally``/``with`` cleans up as for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def _non_finite_option(args: argparse.Namespace) -> str | None:
    """``"--flag: ..."`` for the first float option (or list of floats) that is NaN or infinite, else ``None``."""
    for key, value in vars(args).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                return f"--{key.replace('_', '-')}: expected a finite number, got {v}"
    return None


def _attach_negative_values(argv: list[str]) -> list[str]:
    """``--crop -50,0,512,512`` -> ``--crop=-50,0,512,512``: argparse takes a value that starts with ``-`` and is no
    plain number for an option, and would answer "expected one argument" instead of checking the value."""
    out: list[str] = []
    for token in argv:
        if (out and out[-1].startswith("--") and "=" not in out[-1] and re.fullmatch(r"-\d[\d.]*(,[^,]*)+", token)):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_attach_negative_values(list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    bad = _non_finite_option(args)
    if bad:
        print(f"tpsmm {args.command}: error: {bad}", file=sys.stderr)
        return 2
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args) or 0)
    except Terminated:
        print("tpsmm: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("tpsmm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one-line errors for users; full traceback on request
        if os.environ.get("TPSMM_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        if isinstance(exc, (KeyError, AttributeError, IndexError)):  # a bare key/attribute says nothing to a user
            msg = (f"unexpected input or internal error ({exc.__class__.__name__}: {msg}); "
                   "set TPSMM_DEBUG=1 for the traceback and please report it")
        print(f"tpsmm {args.command}: error: {msg}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
