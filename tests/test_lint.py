"""ruff and mypy run as part of the README's single test command, so a newcomer and CI see the
same verdict (.ci/run also runs them first, for a quick failure). Both read their settings
from pyproject.toml."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean() -> None:
    proc = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert proc.returncode == 0, f"ruff found problems (fix them, or `ruff check --fix .`):\n{proc.stdout}{proc.stderr}"


def test_mypy_is_clean() -> None:
    proc = _run("mypy")
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout}{proc.stderr}"
    assert "Success" in proc.stdout
