"""Regenerate the README's CLI reference from the real ``--help`` texts.

    python tools/cli_reference.py          # rewrite the block between the markers in README.md
    python tools/cli_reference.py --check  # exit 1 if README.md is out of date (used by the tests)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"


def reference() -> str:
    """Markdown with the ``--help`` of ``tpsmm`` and of every sub-command (80 columns)."""
    os.environ["COLUMNS"] = "80"
    from tpsmm.__main__ import build_parser

    parser = build_parser()
    parts = ["### `tpsmm`", "", "```text", parser.format_help().rstrip(), "```", ""]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        parts += [f"### `tpsmm {name}`", "", "```text", p.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def render(text: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"{README}: markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n\n{reference()}\n{END}{tail}"


def main() -> int:
    check = "--check" in sys.argv[1:]
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if check:
        if new != text:
            print("README.md CLI reference is out of date: run python tools/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
