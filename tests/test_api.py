"""The Python API: cheap import, the documented names, mint -> upload over real servers."""
from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import s3mpu
from s3mpu.config import Settings

MiB = 1024 * 1024


def admin_settings(server: Any, **extra: Any) -> Settings:
    from relay_fixtures import RELAY_SECRET

    return Settings(endpoint_url=server.endpoint, region=server.region, access_key=server.access_key,
                    secret_key=server.secret_key, addressing="path", relay_secrets=(RELAY_SECRET,), **extra)


def test_import_is_cheap() -> None:
    code = ("import sys, s3mpu; s3mpu.Manifest; s3mpu.S3mpuError; "
            "print(sorted(m for m in ('boto3', 'botocore', 'rich', 'flask', 'click', 'tqdm', 'urllib3') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(r.stdout.replace("'", '"')) == []


def test_every_documented_name_resolves() -> None:
    for name in s3mpu.__all__:
        assert getattr(s3mpu, name) is not None, name
    from s3mpu import Manifest, S3mpuError, load_manifest, mint, plan, upload  # noqa: F401 - the brief's line

    assert issubclass(s3mpu.DataError, s3mpu.S3mpuError) and s3mpu.DataError.exit_code == 65


def test_verbs_are_functions_beside_their_modules() -> None:
    import inspect

    import s3mpu.admin.mint
    import s3mpu.user.upload as up

    assert callable(s3mpu.mint) and callable(s3mpu.plan) and callable(s3mpu.upload)
    assert up.UploadResult is s3mpu.UploadResult and s3mpu.admin.mint.MintRequest is s3mpu.MintRequest
    assert callable(s3mpu.upload)  # importing the module did not shadow the verb
    assert "part_size" in inspect.signature(s3mpu.plan).parameters


def test_plan_mint_upload_with_callback(rclone_server: Any, relay_for: Any, make_data: Any, tmp_path: Path) -> None:
    path = make_data(11 * MiB + 1)
    bucket = rclone_server.bucket()
    p = s3mpu.plan(path, "5M", output=tmp_path / "p.json")
    assert s3mpu.load_plan(tmp_path / "p.json") == p
    out = tmp_path / "m.json"
    m = s3mpu.mint(f"s3://{bucket}/api/planned.bin", plan=tmp_path / "p.json", expires="1h",
                   relay_url=relay_for(rclone_server).url, settings=admin_settings(rclone_server), output=out)
    assert isinstance(m, s3mpu.Manifest) and len(m.parts) == 3 and m.sha256 == p.sha256
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    seen: list[tuple[int, int]] = []
    result = s3mpu.upload(out, path, progress=lambda done, total: seen.append((done, total)), jobs=2)
    assert result.completed and result.size == path.stat().st_size
    assert seen[0] == (0, path.stat().st_size) and seen[-1] == (path.stat().st_size, path.stat().st_size)
    body = rclone_server.client().get_object(Bucket=bucket, Key="api/planned.bin")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == p.sha256


def test_mint_bucket_key_and_upload_with_tqdm(moto_server: Any, relay_for: Any, make_data: Any,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = make_data(6 * MiB)
    bucket = moto_server.bucket()
    m = s3mpu.mint(bucket, "api/tqdm.bin", size=path.stat().st_size, part_size="5M",
                   relay_url=relay_for(moto_server).url, settings=admin_settings(moto_server))
    result = s3mpu.upload(m, path)  # progress=True: a tqdm bar on stderr
    assert result.completed
    err = capsys.readouterr().err
    assert "100%" in err and "2 parts" in err


def test_mint_with_own_client(moto_server: Any) -> None:
    bucket = moto_server.bucket()
    m = s3mpu.mint(f"s3://{bucket}/own", max_size="20M", client=moto_server.client(), settings=Settings())
    assert m.size_is_max and m.endpoint == moto_server.endpoint
    import boto3

    bare = boto3.client("s3", endpoint_url=moto_server.endpoint, region_name="us-east-1",
                        aws_access_key_id="a", aws_secret_access_key="b")
    with pytest.raises(s3mpu.UsageError, match="SigV2"):
        s3mpu.mint(f"s3://{bucket}/bare", size=10, client=bare, settings=Settings())


def test_api_argument_errors(moto_server: Any) -> None:
    with pytest.raises(s3mpu.UsageError):
        s3mpu.mint("s3://b/k", "k2", size=1, settings=Settings(), client=moto_server.client())
    with pytest.raises(s3mpu.UsageError, match="no object key"):
        s3mpu.mint("bucket-only", size=1, settings=Settings(), client=moto_server.client())
    with pytest.raises(s3mpu.UsageError, match="not a size"):
        s3mpu.mint("s3://b/k", size="12Q", settings=Settings(), client=moto_server.client())
    with pytest.raises(s3mpu.UsageError, match="progress must be"):
        s3mpu.upload(s3mpu.Manifest.__new__(s3mpu.Manifest), "x", progress=42)


def test_cli_mint_to_unwritable_output_creates_nothing(moto_server: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from s3mpu.cli import cli

    bucket = moto_server.bucket()
    r = CliRunner().invoke(cli, ["mint", f"s3://{bucket}/k", "--size", "1", "-o", str(tmp_path / "no" / "m.json")],
                           env=moto_server.env())
    assert r.exit_code == 66 and "not a writable directory" in r.output
    assert moto_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_complete_like_the_cli_through_the_relay_and_directly(rclone_server: Any, relay_for: Any, make_data: Any,
                                                             tmp_path: Path) -> None:
    """s3mpu.complete: the journal's MD5s are checked, the relay is used without credentials, S3 with them."""
    path = make_data(10 * MiB + 5)
    bucket = rclone_server.bucket()
    relay = relay_for(rclone_server).url
    for n, settings in enumerate([Settings(), admin_settings(rclone_server)]):
        out = tmp_path / f"m{n}.json"
        s3mpu.mint(f"s3://{bucket}/api/complete-{n}", size=path.stat().st_size, part_size="5M", relay_url=relay,
                   settings=admin_settings(rclone_server), output=out)
        assert not s3mpu.upload(out, path, progress=False, complete=False).completed
        done = s3mpu.complete(out, settings=settings)
        assert done["how"] == ("through the relay" if n == 0 else "directly")
        md5s = [hashlib.md5(path.read_bytes()[i:i + 5 * MiB]).hexdigest() for i in range(0, 10 * MiB + 5, 5 * MiB)]
        assert done["etag"] == s3mpu.user.upload.composite_etag(md5s) and done["size"] == path.stat().st_size
        again = s3mpu.complete(out, settings=settings)  # idempotent; the journal is gone, so no part list is sent:
        whole = hashlib.md5(path.read_bytes()).hexdigest()  # rclone's HEAD then names the object by its plain MD5
        assert again["size"] == done["size"] and again["etag"] in (done["etag"], whole)
        body = rclone_server.client().get_object(Bucket=bucket, Key=f"api/complete-{n}")["Body"].read()
        assert body == path.read_bytes()
    with pytest.raises(s3mpu.ConfigError, match="no relay"):
        s3mpu.complete(s3mpu.mint(f"s3://{bucket}/api/norelay", size=1, settings=admin_settings(rclone_server)),
                       settings=Settings())
