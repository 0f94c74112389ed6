"""The fast presigning path: byte-identical to botocore's generate_presigned_url, accepted by a strict server.

The fast path (s3mpu/admin/presign.py) signs parts 2..N from a template made by botocore for part 1.
These tests pin it to botocore's own output at the same timestamp, for every shape a
manifest uses, and send real part PUTs through its URLs to ``rclone serve s3``, which
checks SigV4 signatures and signed headers.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import http.client
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
from botocore.config import Config

from s3mpu.layout import PartSpan, plan_parts
from s3mpu.admin.mint import MintRequest, mint
from s3mpu.admin.presign import Presigner, b64_md5

MiB = 1 << 20
FIXED = dt.datetime(2026, 11, 30, 12, 34, 56)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """botocore reads the time once per signature; freeze it so both paths sign the same instant."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: FIXED)
    return FIXED


def _client(endpoint: str | None = "http://127.0.0.1:9000", addressing: str = "path", sig: str = "s3v4",
            token: str | None = None, region: str = "us-east-1") -> Any:
    kwargs: dict[str, Any] = {}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    return boto3.client("s3", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
                        aws_session_token=token, region_name=region,
                        config=Config(signature_version=sig, s3={"addressing_style": addressing}), **kwargs)


def _slow(p: Presigner, spans: list[PartSpan], sign_length: bool, md5s: list[str] | None) -> list[str]:
    return [p.part_url(s, sign_length, md5s[i] if md5s else None) for i, s in enumerate(spans)]


SHAPES = [
    pytest.param({}, id="path"),
    pytest.param({"addressing": "virtual", "endpoint": "http://s3.example.test:9000"}, id="virtual-custom-endpoint"),
    pytest.param({"addressing": "auto", "endpoint": None, "region": "eu-west-1"}, id="aws-auto-eu-west-1"),
    pytest.param({"addressing": "path", "endpoint": "https://s3.example.test"}, id="https-default-port"),
    pytest.param({"token": "FwoGZXIvYXdzEJr//////////wEaDOpaque+token/with=chars"}, id="session-token"),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sign_length,with_md5", [(True, False), (True, True), (False, False), (False, True)])
def test_fast_path_equals_generate_presigned_url(frozen_clock: dt.datetime, shape: dict[str, Any],
                                                 sign_length: bool, with_md5: bool) -> None:
    client = _client(**shape)
    spans = plan_parts(23 * MiB + 17, 5 * MiB)  # 5 parts, the last one short
    md5s = [hashlib.md5(str(s.number).encode()).hexdigest() for s in spans] if with_md5 else None
    p = Presigner(client, "bucket-name", "dir/key with spaces+plus/ümlaut~tilde", "2~Upload.Id_-x", 3600)
    fast = p.part_urls(spans, sign_length, md5s)
    assert p.fast_path_used
    assert fast == _slow(p, spans, sign_length, md5s)
    signed = "content-length%3Bhost" if sign_length and not with_md5 else None
    if signed:
        assert all(f"X-Amz-SignedHeaders={signed}&" in u for u in fast)
    if with_md5:
        assert all("content-md5" in u for u in fast)


def test_signature_v2_falls_back_to_botocore(frozen_clock: dt.datetime) -> None:
    client = _client(sig="s3")
    spans = plan_parts(12 * MiB, 5 * MiB)
    p = Presigner(client, "bucket-name", "k", "uid", 600)
    urls = p.part_urls(spans, True)
    assert not p.fast_path_used
    assert urls == _slow(p, spans, True, None)
    assert all("AWSAccessKeyId=" in u and "Signature=" in u and "X-Amz-" not in u for u in urls)


def test_empty_and_single_part(frozen_clock: dt.datetime) -> None:
    p = Presigner(_client(), "bucket-name", "k", "uid", 600)
    assert p.part_urls([], True) == []
    one = [PartSpan(1, 0, 0)]
    assert p.part_urls(one, True) == _slow(p, one, True, None)


def test_fast_path_uses_one_timestamp_for_all_parts() -> None:
    p = Presigner(_client(), "bucket-name", "k", "uid", 600)
    urls = p.part_urls(plan_parts(300 * MiB, 5 * MiB), True)
    assert p.fast_path_used
    dates = {u.split("X-Amz-Date=")[1].split("&")[0] for u in urls}
    assert len(dates) == 1


# ---- real requests against rclone serve s3 (strict SigV4) -----------------------------------------

def _put(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        try:
            conn.request("PUT", f"{u.path}?{u.query}", body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused before reading the whole body; its answer is still there
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _fast_urls(client: Any, bucket: str, key: str, upload_id: str, spans: list[PartSpan],
               md5s: list[str] | None = None) -> list[str]:
    p = Presigner(client, bucket, key, upload_id, 900)
    urls = p.part_urls(spans, True, md5s)
    assert p.fast_path_used  # parts 2.. come from the fast path
    return urls


def _upload(rclone_server: Any) -> tuple[Any, str, str, str]:
    client = rclone_server.client()
    bucket = rclone_server.bucket("presign")
    key = "fast path/object.bin"
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    return client, bucket, key, upload_id


def test_fast_urls_accepted_by_rclone_and_complete(rclone_server: Any) -> None:
    client, bucket, key, upload_id = _upload(rclone_server)
    data = bytes(range(256)) * (4 * 5 * MiB // 256) + b"tail"
    spans = plan_parts(len(data), 5 * MiB)
    md5s = [hashlib.md5(data[s.offset:s.offset + s.size]).hexdigest() for s in spans]
    p = Presigner(client, bucket, key, upload_id, 900)
    urls = p.part_urls(spans, True, md5s)
    assert p.fast_path_used and len(urls) == 5
    etags = []
    for s, url, md5 in zip(spans, urls, md5s, strict=True):
        status, body = _put(url, data[s.offset:s.offset + s.size], {"Content-MD5": b64_md5(md5)})
        assert status == 200, body
        etags.append(md5)
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": s.number, "ETag": f'"{e}"'} for s, e in zip(spans, etags, strict=True)]})
    got = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert got == data


def test_rclone_refuses_wrong_length_on_fast_url(rclone_server: Any) -> None:
    client, bucket, key, upload_id = _upload(rclone_server)
    spans = plan_parts(15 * MiB, 5 * MiB)
    urls = _fast_urls(client, bucket, key, upload_id, spans)
    status, body = _put(urls[1], b"x" * (5 * MiB - 1))  # part 2 is a fast-path URL
    assert status == 403 and b"SignatureDoesNotMatch" in body
    parts = client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", [])
    assert parts == []
    status, body = _put(urls[1], b"x" * (5 * MiB))  # the right length is still welcome
    assert status == 200, body


def test_rclone_refuses_wrong_md5_header_on_fast_url(rclone_server: Any) -> None:
    client, bucket, key, upload_id = _upload(rclone_server)
    spans = plan_parts(15 * MiB, 5 * MiB)
    good = b"y" * (5 * MiB)
    md5s = [hashlib.md5(good).hexdigest()] * 3
    urls = _fast_urls(client, bucket, key, upload_id, spans, md5s)
    other = hashlib.md5(b"z" * (5 * MiB)).hexdigest()
    status, body = _put(urls[2], b"z" * (5 * MiB), {"Content-MD5": b64_md5(other)})
    assert status == 403 and b"SignatureDoesNotMatch" in body
    status, body = _put(urls[2], good)  # signed Content-MD5 left out
    assert status == 403
    status, body = _put(urls[2], good, {"Content-MD5": b64_md5(md5s[2])})
    assert status == 200, body


def test_rclone_refuses_tampered_part_number_on_fast_url(rclone_server: Any) -> None:
    client, bucket, key, upload_id = _upload(rclone_server)
    spans = plan_parts(15 * MiB, 5 * MiB)
    urls = _fast_urls(client, bucket, key, upload_id, spans)
    status, body = _put(urls[1].replace("partNumber=2&", "partNumber=3&"), b"x" * (5 * MiB))
    assert status == 403 and b"SignatureDoesNotMatch" in body


def test_mint_manifest_of_many_parts_is_fast_path_and_valid(rclone_server: Any) -> None:
    """A whole mint through the library: every URL of a 2,000-part manifest is well formed and one works."""
    client = rclone_server.client()
    bucket = rclone_server.bucket("presign")
    m = mint(client, MintRequest(bucket=bucket, key="many.bin", size=2000 * 5 * MiB, part_size=5 * MiB),
             endpoint=rclone_server.endpoint, region="us-east-1")
    assert len(m.parts) == 2000
    assert len({p.url for p in m.parts}) == 2000
    assert all(f"partNumber={p.number}&" in p.url for p in m.parts)
    status, body = _put(m.parts[1234].url, b"q" * (5 * MiB))
    assert status == 200, body
    client.abort_multipart_upload(Bucket=bucket, Key="many.bin", UploadId=m.upload_id)
