"""Content-bound manifests end to end: plan -> mint --plan -> upload, on real servers.

The point of a plan is that S3 *itself* refuses other bytes: each part URL signs its
Content-MD5. rclone serve s3 checks that (moto does not), so the refusal tests run on rclone.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3
from click.testing import CliRunner

from s3mpu.cli import cli
from s3mpu.manifest import load
from s3mpu.admin.presign import b64_md5

MiB = 1024 * 1024


def run(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def plan_and_mint(server: Any, path: Path, tmp_path: Path, key: str = "planned.bin") -> tuple[Any, str]:
    """The user plans (no credentials), the admin mints from the plan; returns (manifest, bucket)."""
    plan_file = tmp_path / f"{path.name}.plan.json"
    r = run(["plan", str(path), "--part-size", "5M", "-o", str(plan_file)])
    assert r.exit_code == 0, r.output
    bucket = server.bucket()
    out = tmp_path / f"{path.name}.{key}.manifest.json"
    r = run(["mint", f"s3://{bucket}/{key}", "--plan", str(plan_file), "--expires", "1h", "-o", str(out)], server.env())
    assert r.exit_code == 0, r.output
    return load(out), bucket


def _put(url: str, body: bytes, md5_hex: str | None) -> urllib3.BaseHTTPResponse:
    headers = {"Content-MD5": b64_md5(md5_hex)} if md5_hex else {}
    return urllib3.PoolManager(retries=False).request("PUT", url, body=body, headers=headers)


def test_mint_from_plan_signs_md5_and_stores_sha256(s3: Any, make_data: Any, tmp_path: Path) -> None:
    path = make_data(11 * MiB + 5)
    data = path.read_bytes()
    m, bucket = plan_and_mint(s3, path, tmp_path)
    assert [p.md5 for p in m.parts] == [hashlib.md5(data[p.offset:p.offset + p.size]).hexdigest() for p in m.parts]
    assert m.sha256 == hashlib.sha256(data).hexdigest()
    for p in m.parts:
        signed = parse_qs(urlsplit(p.url).query)["X-Amz-SignedHeaders"][0].split(";")
        assert "content-md5" in signed and "content-length" in signed
    etags = []
    for p in m.parts:
        resp = _put(p.url, data[p.offset:p.offset + p.size], p.md5)
        assert resp.status == 200, resp.data
        etags.append({"PartNumber": p.number, "ETag": resp.headers["ETag"]})
    admin = s3.client()
    admin.complete_multipart_upload(Bucket=bucket, Key=m.key, UploadId=m.upload_id, MultipartUpload={"Parts": etags})
    head = admin.head_object(Bucket=bucket, Key=m.key)
    meta = {k.lower(): v for k, v in head["Metadata"].items()}
    assert meta["s3mpu-sha256"] == m.sha256
    assert admin.get_object(Bucket=bucket, Key=m.key)["Body"].read() == data


def test_rclone_refuses_other_bytes_under_signed_md5(rclone_server: Any, make_data: Any, tmp_path: Path) -> None:
    path = make_data(6 * MiB)
    m, _ = plan_and_mint(rclone_server, path, tmp_path)
    p = m.parts[0]
    other = os.urandom(p.size)  # same length, other bytes
    # Sent with the signed MD5: the body does not match it -> BadDigest.
    resp = _put(p.url, other, p.md5)
    assert resp.status in (400, 403) and b"BadDigest" in resp.data
    # Sent with its own (true) MD5: the header no longer matches the signature.
    m2, bucket2 = plan_and_mint(rclone_server, path, tmp_path, key="second.bin")
    resp = _put(m2.parts[0].url, other, hashlib.md5(other).hexdigest())
    assert resp.status == 403 and b"SignatureDoesNotMatch" in resp.data
    # Sent with no Content-MD5 at all: refused as well.
    resp = _put(m2.parts[0].url, other, None)
    assert resp.status == 403
    listed = rclone_server.client().list_parts(Bucket=bucket2, Key=m2.key, UploadId=m2.upload_id).get("Parts", [])
    assert listed == []  # nothing stored from the other bytes


def test_mint_plan_layout_mismatch_with_explicit_part_size(moto_server: Any, make_data: Any, tmp_path: Path) -> None:
    """--plan fixes the layout: a plan with inconsistent fields is refused before any upload exists."""
    path = make_data(6 * MiB)
    plan_file = tmp_path / "p.json"
    assert run(["plan", str(path), "--part-size", "5M", "-o", str(plan_file)]).exit_code == 0
    d = json.loads(plan_file.read_text())
    d["parts"][0]["md5"] = "0" * 31  # tampered
    plan_file.write_text(json.dumps(d))
    bucket = moto_server.bucket()
    r = run(["mint", f"s3://{bucket}/k", "--plan", str(plan_file), "-o", str(tmp_path / "m.json")], moto_server.env())
    assert r.exit_code == 65 and "parts[0].md5" in r.output
    assert moto_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# -- plan -> mint --plan -> put (the real uploader), with a relay -------------------------------------
def mint_with_relay(server: Any, relay_url: str, plan_file: Path, tmp_path: Path, key: str) -> tuple[Path, str]:
    from relay_fixtures import RELAY_SECRET

    bucket = server.bucket()
    out = tmp_path / f"{key}.manifest.json"
    r = run(["mint", f"s3://{bucket}/{key}", "--plan", str(plan_file), "--relay", relay_url, "-o", str(out)],
            {**server.env(), "S3MPU_RELAY_SECRET": RELAY_SECRET})
    assert r.exit_code == 0, r.output
    return out, bucket


def test_plan_mint_put_identical(s3: Any, relay_for: Any, make_data: Any, tmp_path: Path) -> None:
    path = make_data(11 * MiB + 3)
    plan_file = tmp_path / "p.json"
    assert run(["plan", str(path), "--part-size", "5M", "-o", str(plan_file)]).exit_code == 0
    manifest, bucket = mint_with_relay(s3, relay_for(s3).url, plan_file, tmp_path, "put-identical.bin")
    r = run(["put", str(manifest), str(path), "--json", "--progress", "none"])  # the user: no AWS variables
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["completed"] is True and result["size"] == path.stat().st_size
    head = s3.client().head_object(Bucket=bucket, Key="put-identical.bin")
    assert {k.lower(): v for k, v in head["Metadata"].items()}["s3mpu-sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert s3.client().get_object(Bucket=bucket, Key="put-identical.bin")["Body"].read() == path.read_bytes()


@pytest.mark.parametrize("where", ["first", "last"])
def test_put_of_a_file_differing_from_its_plan_sends_nothing(rclone_server: Any, relay_for: Any, make_data: Any,
                                                             tmp_path: Path, where: str) -> None:
    path = make_data(16 * MiB, "orig.bin")
    plan_file = tmp_path / "p.json"
    assert run(["plan", str(path), "--part-size", "5M", "-o", str(plan_file)]).exit_code == 0
    manifest, bucket = mint_with_relay(rclone_server, relay_for(rclone_server).url, plan_file, tmp_path, f"d-{where}")
    changed = tmp_path / "changed.bin"
    data = bytearray(path.read_bytes())
    data[0 if where == "first" else len(data) - 1] ^= 0xFF  # same size, one byte differs
    changed.write_bytes(bytes(data))
    r = run(["put", str(manifest), str(changed), "--progress", "none", "-j", "4"])
    assert r.exit_code == 65, r.output
    assert "MD5" in r.output or "plan" in r.output
    m = load(manifest)
    listed = rclone_server.client().list_parts(Bucket=bucket, Key=m.key, UploadId=m.upload_id)
    assert listed.get("Parts", []) == []  # nothing sent, and the upload is still usable
    ok = run(["put", str(manifest), str(path), "--progress", "none"])  # the right file still goes through
    assert ok.exit_code == 0, ok.output
