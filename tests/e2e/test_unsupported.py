"""A server without ListParts / ListMultipartUploads / AbortMultipartUpload (s3rver answers 405
MethodNotAllowed or 501 NotImplemented) is reported as unsupported: exit 78, never "retry later"
(75) and never "the parts do not match" (422 / 65)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from relay_fixtures import RELAY_SECRET, mint_for, put_parts, relay_settings
from test_relay_sigv2 import s3rver_server  # noqa: F401 - the session fixture (npm s3rver)

from s3mpu.cli import cli
from s3mpu.relay.server import start_relay


def run(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def test_listmp_on_a_server_without_listing_is_unsupported_not_tempfail(s3rver_server: Any) -> None:  # noqa: F811
    bucket = s3rver_server.bucket()
    uid = s3rver_server.client().create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for args in (["listmp", f"s3://{bucket}"], ["listmp", f"s3://{bucket}/k", uid]):
        r = run(args, s3rver_server.env())
        assert r.exit_code == 78, r.output
        assert "does not support" in r.stderr and "Retry later" not in r.stderr and "Retrying will not help" in r.stderr


def test_complete_through_relay_on_a_server_without_listparts(s3rver_server: Any, tmp_path: Path) -> None:  # noqa: F811
    bucket = s3rver_server.bucket()
    data = os.urandom(3000)
    with start_relay(relay_settings(s3rver_server)) as relay:
        m = mint_for(s3rver_server, bucket, "nolist", relay.url, secret=RELAY_SECRET, size=len(data))
        put_parts(m, data)
        path = tmp_path / "m.json"
        path.write_text(m.to_json())
        r = run(["complete", path])
        assert r.exit_code == 78, r.output
        assert "501 unsupported" in r.stderr and "does not support" in r.stderr
        assert "parts_mismatch" not in r.stderr and "check the file" not in r.stderr
        r = run(["abort", path])
        assert r.exit_code == 78, r.output
        assert "does not support" in r.stderr
