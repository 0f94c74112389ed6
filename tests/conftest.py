"""Shared fixtures: real S3 servers started once per session, a clean user environment per test."""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from pathlib import Path

import pytest

from servers import S3Server, start_moto, start_rclone

_AWS_VARS = [v for v in os.environ if v.startswith("AWS_") and v != "AWS_CA_BUNDLE"] + ["S3MPU_RELAY_SECRET"]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rclone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_rclone(tmp_path_factory.mktemp("rclone-data"))
    yield server
    server.stop()


@pytest.fixture(params=["moto", "rclone"])
def s3(request: pytest.FixtureRequest) -> S3Server:
    """Each test using this runs against both servers: moto (fast) and rclone (strict)."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS credentials, an empty HOME and private XDG dirs: every test starts as a fresh user."""
    for var in _AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_COLOR", "1")
    return home


def make_file(path: Path, size: int, seed: int = 0) -> Path:
    """A file of ``size`` pseudo-random bytes (distinct per seed, cheap to generate)."""
    import random

    rnd = random.Random(seed)
    block = rnd.randbytes(min(size, 1 << 20)) if size else b""
    with path.open("wb") as fh:
        left = size
        i = 0
        while left > 0:
            chunk = block[: min(left, len(block))]
            fh.write(i.to_bytes(8, "little") + chunk[8:] if len(chunk) > 8 else chunk)
            left -= len(chunk)
            i += 1
    return path


@pytest.fixture
def make_data(tmp_path: Path):  # type: ignore[no-untyped-def]
    def _make(size: int, name: str = "data.bin", seed: int = 0) -> Path:
        return make_file(tmp_path / name, size, seed)

    return _make
from relay_fixtures import *  # noqa: E402,F401,F403 - relay_for, relay (relay engineer)


@pytest.fixture(autouse=True)
def _no_secrets_logged(no_secrets_in_logs: Any) -> Any:
    """Every test, suite-wide: no relay token, URL signature or known secret reaches a log line."""
    return no_secrets_in_logs
