"""Minting bundles: single PUTs (length, MD5 and headers signed, proven on rclone), multipart objects,
parallel creates, all-or-nothing on failure, and the mint command's prefix rules."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3
from click.testing import CliRunner

from relay_fixtures import RELAY_SECRET
from s3mpu import bundle as bundles
from s3mpu import token as tokens
from s3mpu.admin.mint_bundle import BundleFile, BundleRequest, headers_to_send, mint_bundle
from s3mpu.cli import cli
from s3mpu.errors import DataError, S3mpuError, UsageError
from s3mpu.plan_dir import plan_dir
from servers import S3Server

MiB = 1 << 20
HTTP = urllib3.PoolManager(retries=False)


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def files_for(data: dict[str, bytes], part_size: int = 5 * MiB, hashed: bool = True) -> list[BundleFile]:
    out = []
    for path, d in data.items():
        md5s = [md5_hex(d[o:o + part_size]) for o in range(0, max(len(d), 1), part_size)] if hashed else None
        out.append(BundleFile(path, len(d), part_size, md5s, hashlib.sha256(d).hexdigest() if hashed else None))
    return out


DATA = {"empty": b"", "one.txt": b"1", "dir/exact.bin": b"e" * (5 * MiB), "dir/big.mov": b"b" * (11 * MiB + 7),
        "caf\u00e9 au lait/x y.json": b"{}"}


def _mint(s3: S3Server, bucket: str, client: Any = None, **kw: Any) -> bundles.Bundle:
    req = BundleRequest(bucket=bucket, prefix=kw.pop("prefix", "in/"), files=kw.pop("files", files_for(DATA)), **kw)
    return mint_bundle(client or s3.client(), req, endpoint=s3.endpoint, region="us-east-1",
                       relay_secret=RELAY_SECRET, signature_version="s3v4")


def put(o: bundles.BundleObject, body: bytes, md5: str | None = None, drop: str | None = None,
        extra: dict[str, str] | None = None) -> Any:
    headers = {k: v for k, v in o.headers.items() if k != drop}
    headers["Content-Length"] = str(len(body))
    if md5 or o.md5:
        headers["Content-MD5"] = base64.b64encode(bytes.fromhex(md5 or o.md5 or "")).decode()
    headers.update(extra or {})
    assert o.url
    return HTTP.request("PUT", o.url, body=body, headers=headers)


def test_bundle_shape_roundtrips_through_the_schema(s3: S3Server) -> None:
    bucket = s3.bucket()
    b = _mint(s3, bucket, relay_url="http://relay.example")
    again = bundles.loads(b.to_json())
    assert again == b and len(b.id) == 32 and b.prefix == "in/" and b.relay_url == "http://relay.example"
    by = {o.path: o for o in b.objects}
    assert {p for p, o in by.items() if o.multipart} == {"dir/big.mov"}
    assert by["dir/exact.bin"].url and by["dir/exact.bin"].md5 == md5_hex(DATA["dir/exact.bin"])  # one part: one PUT
    assert by["one.txt"].content_type == "text/plain" and by["caf\u00e9 au lait/x y.json"].content_type == \
        "application/json"
    m = by["dir/big.mov"].manifest
    assert m is not None and m.key == "in/dir/big.mov" and len(m.parts) == 3 and m.content_type == "video/quicktime"
    assert [p.md5 for p in m.parts] == [md5_hex(DATA["dir/big.mov"][o:o + 5 * MiB]) for o in (0, 5 * MiB, 10 * MiB)]
    ident = tokens.verify(m.relay.token if m.relay else "", [RELAY_SECRET])
    assert (ident.key, ident.upload_id) == ("in/dir/big.mov", m.upload_id)
    assert _mint(s3, bucket).id != b.id


def test_single_put_signs_length_md5_and_every_header(rclone_server: S3Server) -> None:
    """rclone checks SigV4: exactly the listed headers succeed; another length, MD5 or header set is refused."""
    s3 = rclone_server
    bucket = s3.bucket()
    b = _mint(s3, bucket, metadata={"Owner": "ann"}, content_type="text/csv")
    o = next(o for o in b.objects if o.path == "one.txt")
    q = parse_qs(urlsplit(o.url or "").query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"content-length", "content-md5", "content-type", "x-amz-meta-owner", "x-amz-meta-s3mpu-sha256"} <= set(q)
    assert o.headers == {"content-type": "text/csv", "x-amz-meta-owner": "ann",
                         "x-amz-meta-s3mpu-sha256": hashlib.sha256(b"1").hexdigest()}
    assert put(o, b"22").status == 403  # another length
    assert put(o, b"2").status in (400, 403)  # same length, other bytes: the signed MD5 refuses them
    assert put(o, b"2", md5=md5_hex(b"2")).status == 403  # an MD5 that matches other bytes is not the signed one
    assert put(o, b"1", drop="x-amz-meta-owner").status == 403
    assert put(o, b"1", extra={"x-amz-meta-owner": "eve"}).status == 403
    r = put(o, b"1")
    assert r.status == 200, r.data
    head = s3.client().head_object(Bucket=bucket, Key="in/one.txt")
    meta = {k.lower(): v for k, v in head["Metadata"].items()}  # rclone keeps the case it was given
    assert head["ContentType"] == "text/csv" and meta["owner"] == "ann", head
    assert s3.client().get_object(Bucket=bucket, Key="in/one.txt")["Body"].read() == b"1"
    empty = next(o for o in b.objects if o.path == "empty")
    assert put(empty, b"").status == 200


def test_sizes_only_put_signs_length_without_md5(rclone_server: S3Server) -> None:
    s3 = rclone_server
    bucket = s3.bucket()
    b = _mint(s3, bucket, files=files_for({"noext": b"abc"}, hashed=False), acl="private",
              storage_class="STANDARD")
    o = b.objects[0]
    assert o.md5 is None
    assert set(o.headers) == {"x-amz-acl", "x-amz-storage-class"}  # no content type guessed without an extension
    assert "content-md5" not in parse_qs(urlsplit(o.url or "").query)["X-Amz-SignedHeaders"][0]
    assert put(o, b"abcd").status == 403
    assert put(o, b"xyz").status == 200  # length is all a sizes-only plan binds
    assert put(o, b"abc", drop="x-amz-storage-class").status == 403


def test_headers_to_send_refuses_a_signed_header_it_cannot_name() -> None:
    url = "https://s3/b/k?X-Amz-SignedHeaders=content-length%3Bhost%3Bx-amz-tagging&X-Amz-Signature=x"
    with pytest.raises(DataError, match="x-amz-tagging"):
        headers_to_send(url, {}, "s3v4")
    sigv2 = "https://s3/b/k?AWSAccessKeyId=a&Signature=s&content-type=text%2Fplain&Expires=1"
    assert headers_to_send(sigv2, {"content-type": "text/plain", "x-amz-acl": "private"}, "s3") == \
        {"content-type": "text/plain", "x-amz-acl": "private"}


class Flaky:
    """An S3 client whose Nth CreateMultipartUpload fails, or whose PUT presign fails."""

    def __init__(self, real: Any, fail_create: int | None = None, fail_presign: bool = False,
                 barrier: threading.Barrier | None = None) -> None:
        self.real, self.fail_create, self.fail_presign, self.barrier = real, fail_create, fail_presign, barrier
        self.creates = 0
        self.lock = threading.Lock()
        self.meta = real.meta

    def create_multipart_upload(self, **kw: Any) -> Any:
        with self.lock:
            self.creates += 1
            n = self.creates
        if self.barrier is not None:
            self.barrier.wait()  # returns only when that many creates are in flight at once
        if n == self.fail_create:
            raise S3mpuError("injected failure")
        return self.real.create_multipart_upload(**kw)

    def generate_presigned_url(self, op: str, **kw: Any) -> Any:
        if op == "put_object" and self.fail_presign:
            raise RuntimeError("injected presign failure")
        return self.real.generate_presigned_url(op, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


BIG = {f"big{i}.bin": bytes([i]) * (6 * MiB) for i in range(6)}


def uploads(s3: S3Server, bucket: str) -> list[Any]:
    return list(s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


@pytest.mark.parametrize("how", [{"fail_create": 4}, {"fail_presign": True}])
def test_a_failed_mint_aborts_every_upload_it_created(moto_server: S3Server, how: dict[str, Any]) -> None:
    bucket = moto_server.bucket()
    flaky = Flaky(moto_server.client(), **how)
    with pytest.raises(S3mpuError):
        _mint(moto_server, bucket, client=flaky, files=files_for({**BIG, "small": b"s"}))
    assert flaky.creates >= 4 if "fail_create" in how else flaky.creates == 6
    assert uploads(moto_server, bucket) == []


def test_creates_run_in_parallel(moto_server: S3Server) -> None:
    bucket = moto_server.bucket()
    flaky = Flaky(moto_server.client(), barrier=threading.Barrier(6, timeout=10))
    b = _mint(moto_server, bucket, client=flaky, files=files_for(BIG))  # would time out if sequential
    assert sum(o.multipart for o in b.objects) == 6 and len(uploads(moto_server, bucket)) == 6


@pytest.mark.parametrize("kw, error, message", [
    ({"prefix": "in"}, UsageError, "does not end in '/'"),
    ({"prefix": "a/../"}, UsageError, "'..' segment"),
    ({"prefix": "x" * 1010 + "/"}, DataError, "1024-byte"),
    ({"files": files_for({"a": b"1"}) * 2}, DataError, "listed twice"),
    ({"files": [BundleFile("../etc/passwd", 1, 5 * MiB)]}, DataError, "'..' segment"),
    ({"files": [BundleFile("ok", 6 * MiB, 1 * MiB)]}, DataError, "ok"),
    ({"files": [BundleFile("ok", 3, 5 * MiB, ["0" * 32, "1" * 32])]}, DataError, "MD5s"),
    ({"files": []}, DataError, "no files"),
    ({"expires": datetime.now(timezone.utc) + timedelta(days=8)}, UsageError, "7-day"),
])
def test_refused_before_anything_is_created(moto_server: S3Server, kw: dict[str, Any], error: type,
                                            message: str) -> None:
    bucket = moto_server.bucket()
    with pytest.raises(error, match=message):
        _mint(moto_server, bucket, **kw)
    assert uploads(moto_server, bucket) == []


# -- the command -------------------------------------------------------------------------
def admin(s3: S3Server, args: list[Any]) -> Any:
    env = {**s3.env(), "S3MPU_RELAY_SECRET": RELAY_SECRET}
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture
def dirplan(tmp_path: Path) -> Path:
    root = tmp_path / "d"
    for rel, data in {"a.txt": b"a", "sub/big.bin": b"x" * (9 * MiB)}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    out = tmp_path / "d.plan.json"
    out.write_text(plan_dir(root).to_json())
    return out


def test_cli_mints_a_bundle_0600(moto_server: S3Server, dirplan: Path, tmp_path: Path) -> None:
    bucket = moto_server.bucket()
    out = tmp_path / "b.json"
    r = admin(moto_server, ["mint", f"s3://{bucket}/in/", "--plan", dirplan, "-o", out, "--json",
                            "--relay", "http://relay.example", "--meta", "k=v", "--storage-class", "STANDARD",
                            "--expires", "2h"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (report["objects"], report["single_put"], report["multipart"]) == (2, 1, 1)
    assert out.stat().st_mode & 0o777 == 0o600
    b = bundles.load(out)
    assert [o.key for o in b.objects] == ["in/a.txt", "in/sub/big.bin"]
    assert b.objects[0].headers["x-amz-storage-class"] == "STANDARD"
    assert b.objects[0].headers["x-amz-meta-k"] == "v"
    assert "X-Amz-Signature" not in r.output  # the report never shows a URL
    assert len(uploads(moto_server, bucket)) == 1


def test_cli_mime_type_applies_to_every_object(moto_server: S3Server, dirplan: Path, tmp_path: Path) -> None:
    r = admin(moto_server, ["mint", f"s3://{moto_server.bucket()}/", "--plan", dirplan, "--mime-type", "x/y",
                            "-o", tmp_path / "b.json"])
    assert r.exit_code == 0, r.output
    b = bundles.load(tmp_path / "b.json")
    assert b.prefix == "" and {o.content_type for o in b.objects} == {"x/y"}


def test_cli_prefix_needs_a_folder_plan(moto_server: S3Server, dirplan: Path, tmp_path: Path) -> None:
    bucket = moto_server.bucket()
    r = admin(moto_server, ["mint", f"s3://{bucket}/in/", "--size", "10M"])
    assert r.exit_code == 64 and "--plan" in r.output and "prefix" in r.output
    single = tmp_path / "one.plan.json"
    (tmp_path / "f").write_bytes(b"abc")
    assert CliRunner().invoke(cli, ["plan", str(tmp_path / "f"), "-o", str(single)]).exit_code == 0
    r = admin(moto_server, ["mint", f"s3://{bucket}/in/", "--plan", single])
    assert r.exit_code == 64 and "one file's plan" in r.output
    r = admin(moto_server, ["mint", f"s3://{bucket}/obj", "--plan", dirplan])
    assert r.exit_code == 64 and "ending in '/'" in r.output
    r = admin(moto_server, ["mint", f"s3://{bucket}/in/", "--plan", dirplan, "--size", "5"])
    assert r.exit_code == 64 and "--size" in r.output
    assert uploads(moto_server, bucket) == []
    assert moto_server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_cli_hostile_plan_is_65_naming_the_field(moto_server: S3Server, dirplan: Path) -> None:
    d = json.loads(dirplan.read_text())
    d["files"][0]["path"] = "../../x"
    dirplan.write_text(json.dumps(d))
    r = admin(moto_server, ["mint", f"s3://{moto_server.bucket()}/in/", "--plan", dirplan])
    assert r.exit_code == 65 and "files[0].path" in r.output


def test_mint_help_no_longer_mints_a_prefix_as_an_object() -> None:
    r = CliRunner().invoke(cli, ["mint", "--help"])
    assert "s3://media/in/ --max-size" not in r.output and "--plan card.plan.json" in r.output
