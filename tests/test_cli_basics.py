"""CLI basics: help everywhere, usage errors exit 64, version."""
from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from s3mpu.cli import COMMANDS, cli


def test_version() -> None:
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and "s3mpu" in r.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_with_example(name: str) -> None:
    r = CliRunner().invoke(cli, [name, "--help"])
    assert r.exit_code == 0, r.output
    assert "Examples:" in r.output and f"s3mpu {name}" in r.output


def test_unknown_option_is_usage_error_64() -> None:
    r = CliRunner().invoke(cli, ["info", "--no-such-option"])
    assert r.exit_code == 64


def test_bad_size_is_usage_error_64() -> None:
    r = CliRunner().invoke(cli, ["mint", "s3://b/k", "--size", "12Q"])
    assert r.exit_code == 64 and "not a size" in r.output


def test_subprocess_help_and_usage_exit_codes() -> None:
    ok = subprocess.run([sys.executable, "-m", "s3mpu", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "mint" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "s3mpu", "mint", "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 64 and "No such option" in bad.stderr
