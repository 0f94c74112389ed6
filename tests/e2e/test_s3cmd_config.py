"""An unchanged s3cmd config file, and no AWS variables at all, drives s3mpu against rclone serve s3.

rclone checks SigV4 signatures, so a manifest minted from the file's keys is proven valid by
uploading through its URLs (over a real socket, with no credentials) and reading the object back.
A wrong secret in the file gives URLs that rclone refuses.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import urllib3

from s3mpu.manifest import load


def s3cfg(server: Any, path: Path, secret: str | None = None) -> Path:
    host = server.endpoint.split("://", 1)[1]
    path.write_text(f"""[default]
access_key = {server.access_key}
secret_key = {secret or server.secret_key}
access_token =
bucket_location = US
host_base = {host}
host_bucket = {host}
use_https = False
signature_v2 = False
check_ssl_certificate = True
multipart_chunk_size_mb = 15
""", encoding="utf-8")
    return path


def user_env() -> dict[str, str]:
    """The process environment minus anything that could carry credentials."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k in (
        "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED")}


def s3mpu(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s3mpu", *args], capture_output=True, text=True,
                          env=env or user_env(), timeout=60)


def put_parts(manifest: Any, data: bytes) -> list[tuple[int, int]]:
    """Send every part through its presigned URL with plain HTTP: (part number, status)."""
    http = urllib3.PoolManager(retries=False)
    return [(p.number, http.request("PUT", p.url, body=data[p.offset:p.offset + p.size]).status)
            for p in manifest.parts]


def test_s3cmd_file_mints_valid_signatures(rclone_server: Any, tmp_path: Path) -> None:
    assert not any(k in os.environ for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"))
    bucket = rclone_server.bucket()
    cfg = s3cfg(rclone_server, tmp_path / "s3cfg")
    data = os.urandom(5 * 1024 * 1024 + 4321)
    out = tmp_path / "m.json"
    r = s3mpu("-c", str(cfg), "mint", f"s3://{bucket}/from/s3cfg.bin", "--size", str(len(data)),
              "--part-size", "5M", "--expires", "1h", "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["parts"] == 2 and report["bucket"] == bucket
    m = load(out)
    assert m.endpoint == rclone_server.endpoint and m.region == "us-east-1"
    assert put_parts(m, data) == [(1, 200), (2, 200)]
    admin = rclone_server.client()
    listed = admin.list_parts(Bucket=bucket, Key=m.key, UploadId=m.upload_id)["Parts"]
    admin.complete_multipart_upload(Bucket=bucket, Key=m.key, UploadId=m.upload_id, MultipartUpload={
        "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in listed]})
    assert admin.get_object(Bucket=bucket, Key=m.key)["Body"].read() == data


def test_default_s3cfg_in_home_is_used(rclone_server: Any, clean_env: Path, tmp_path: Path) -> None:
    bucket = rclone_server.bucket()
    s3cfg(rclone_server, clean_env / ".s3cfg")
    r = s3mpu("listmp", f"s3://{bucket}", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["uploads"] == []
    r = s3mpu("mint", f"s3://{bucket}/k", "--size", "10", "-o", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr
    r = s3mpu("listmp", f"s3://{bucket}", "--json")
    assert [u["key"] for u in json.loads(r.stdout)["uploads"]] == ["k"]


def test_wrong_secret_in_file_is_refused(rclone_server: Any, tmp_path: Path) -> None:
    bucket = rclone_server.bucket()
    cfg = s3cfg(rclone_server, tmp_path / "bad.s3cfg", secret="not-the-secret")
    r = s3mpu("-c", str(cfg), "mint", f"s3://{bucket}/k", "--size", "10", "-o", str(tmp_path / "m.json"))
    assert r.returncode == 77, r.stderr  # rclone refuses CreateMultipartUpload's signature
    assert "access denied" in r.stderr.lower() and "Traceback" not in r.stderr
    assert not (tmp_path / "m.json").exists()


def test_flags_beat_the_file(rclone_server: Any, tmp_path: Path) -> None:
    bucket = rclone_server.bucket()
    cfg = s3cfg(rclone_server, tmp_path / "bad.s3cfg", secret="not-the-secret")
    r = s3mpu("-c", str(cfg), "--secret-key", rclone_server.secret_key, "--access-key", rclone_server.access_key,
              "mint", f"s3://{bucket}/k", "--size", "10", "-o", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr
    env = {**user_env(), "AWS_ACCESS_KEY_ID": rclone_server.access_key, "AWS_SECRET_ACCESS_KEY": rclone_server.secret_key}
    r = s3mpu("-c", str(cfg), "listmp", f"s3://{bucket}", env=env)  # environment beats the file too
    assert r.returncode == 0, r.stderr
