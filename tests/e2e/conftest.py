"""End-to-end helpers: mint as the admin (credentials passed explicitly), put as a user (none).

``e2e`` (function-scoped, parametrized through ``s3`` over moto and rclone) gives a fresh
bucket and methods that run the real CLI: in-process through Click's runner (fast), or as a
real ``s3mpu`` subprocess. The user side always runs with no AWS variables at all.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from relay_fixtures import RELAY_SECRET
from servers import S3Server

from s3mpu.cli import cli

MiB = 1024 * 1024
S3MPU = [sys.executable, "-m", "s3mpu"]


@dataclass
class Ran:
    """A finished s3mpu run (in-process or subprocess)."""

    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class E2E:
    s3: S3Server
    tmp: Path
    bucket: str
    n: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    # -- environments ------------------------------------------------------------------
    def admin_env(self, endpoint: str | None = None) -> dict[str, str]:
        env = {**self.s3.env(), "S3MPU_RELAY_SECRET": RELAY_SECRET}
        if endpoint:
            env["AWS_ENDPOINT_URL"] = endpoint
        return env

    def user_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "S3MPU_RELAY_SECRET"}
        env.update(self.extra_env)
        return env

    # -- running the CLI -----------------------------------------------------------------
    def cli(self, args: list[str], env: dict[str, str] | None = None) -> Ran:
        """In-process; ``env`` None = user (the autouse clean_env already removed every AWS var)."""
        r = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
        return Ran(r.exit_code, r.stdout, r.stderr)

    def run(self, args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> Ran:
        """A real ``s3mpu`` process (user environment unless ``env``)."""
        p = subprocess.run(S3MPU + [str(a) for a in args], env=env or self.user_env(), capture_output=True,
                           text=True, timeout=timeout)
        return Ran(p.returncode, p.stdout, p.stderr)

    def mint(self, *, size: int | None = None, max_size: int | None = None, part_size: str = "5M",
             relay: str | None = None, key: str | None = None, expires: str | None = None,
             endpoint: str | None = None, plan: Path | None = None) -> Path:
        """``s3mpu mint`` with admin credentials; returns the manifest path."""
        self.n += 1
        key = key or f"obj-{self.n}.bin"
        out = self.tmp / f"manifest-{self.n}.json"
        args = ["mint", f"s3://{self.bucket}/{key}", "-o", out]
        if plan is not None:
            args += ["--plan", plan]
        else:
            args += ["--part-size", part_size]
        if size is not None:
            args += ["--size", size]
        if max_size is not None:
            args += ["--max-size", max_size]
        if relay:
            args += ["--relay", relay]
        if expires:
            args += ["--expires", expires]
        r = self.cli(args, env=self.admin_env(endpoint))
        assert r.code == 0, r.stderr
        return out

    def refresh(self, manifest: Path, expires: str = "1h", endpoint: str | None = None) -> Path:
        self.n += 1
        out = self.tmp / f"manifest-{self.n}.json"
        r = self.cli(["mint", "--refresh", manifest, "--expires", expires, "-o", out], env=self.admin_env(endpoint))
        assert r.code == 0, r.stderr
        return out

    def put(self, manifest: Path, file: Path, *args: Any) -> Ran:
        return self.cli(["put", manifest, file, "--json", *args])

    # -- looking at the server with admin credentials ----------------------------------
    def key_of(self, manifest: Path) -> str:
        return str(json.loads(manifest.read_text())["key"])

    def upload_id(self, manifest: Path) -> str:
        return str(json.loads(manifest.read_text())["upload_id"])

    def get(self, manifest: Path) -> bytes:
        return bytes(self.s3.client().get_object(Bucket=self.bucket, Key=self.key_of(manifest))["Body"].read())

    def exists(self, manifest: Path) -> bool:
        try:
            self.s3.client().head_object(Bucket=self.bucket, Key=self.key_of(manifest))
            return True
        except Exception as exc:  # botocore ClientError 404
            if "404" in str(exc) or "Not Found" in str(exc):
                return False
            raise

    def server_parts(self, manifest: Path) -> list[int]:
        r = self.s3.client().list_parts(Bucket=self.bucket, Key=self.key_of(manifest), UploadId=self.upload_id(manifest))
        return [int(p["PartNumber"]) for p in r.get("Parts", [])]


@pytest.fixture
def e2e(s3: S3Server, tmp_path: Path) -> E2E:
    return E2E(s3, tmp_path, s3.bucket())
