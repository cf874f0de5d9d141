"""The README stays true: CI runs its commands, and its CLI reference is the real --help."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    start = ci.index("# --- README: install ---")
    commands = [line for line in ci[start:] if line.strip() and not line.startswith("#")]
    assert commands, "no commands found in .ci/run"
    for line in commands:
        assert line in readme, f".ci/run runs {line!r}, which the README does not show"


def test_cli_reference_is_current():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "cli_reference.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
