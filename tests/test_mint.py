"""Minting: layout, signed Content-Length, expiry limits, token, abort-on-failure, refresh."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3

from s3mpu import token as tokens
from s3mpu.errors import UsageError
from s3mpu.admin.mint import MintRequest, mint, refresh
from servers import S3Server

MiB = 1 << 20
NOW = datetime.now(timezone.utc)


def _mint(s3: S3Server, bucket: str, **kw: Any) -> Any:
    c = s3.client()
    req = MintRequest(bucket=bucket, key=kw.pop("key", "obj"), **kw)
    return c, mint(c, req, endpoint=s3.endpoint, region="us-east-1", relay_secret="sekrit")


def test_exact_manifest_signs_content_length(moto_server: S3Server) -> None:
    b = moto_server.bucket()
    _c, m = _mint(moto_server, b, size=11 * MiB, part_size=5 * MiB, relay_url="http://relay")
    assert [p.size for p in m.parts] == [5 * MiB, 5 * MiB, MiB]
    for p in m.parts:
        q = parse_qs(urlsplit(p.url).query)
        assert "content-length" in q["X-Amz-SignedHeaders"][0]
        assert q["partNumber"] == [str(p.number)]
    ident = tokens.verify(m.relay.token, ["sekrit"])
    assert (ident.upload_id, ident.size, ident.parts) == (m.upload_id, 11 * MiB, 3)


def test_max_size_manifest_does_not_sign_length(moto_server: S3Server) -> None:
    _c, m = _mint(moto_server, moto_server.bucket(), max_size=20 * MiB, part_size=5 * MiB)
    assert m.size_is_max and len(m.parts) == 4
    assert "content-length" not in parse_qs(urlsplit(m.parts[0].url).query)["X-Amz-SignedHeaders"][0]


def test_expiry_beyond_sigv4_limit_refused_before_creating(moto_server: S3Server) -> None:
    b = moto_server.bucket()
    with pytest.raises(UsageError, match="7-day"):
        _mint(moto_server, b, size=MiB, expires=NOW + timedelta(days=8))
    assert moto_server.client().list_multipart_uploads(Bucket=b).get("Uploads", []) == []


def test_relay_without_secret_refused(moto_server: S3Server) -> None:
    c = moto_server.client()
    with pytest.raises(UsageError, match="relay secret"):
        mint(c, MintRequest(bucket=moto_server.bucket(), key="k", size=1, relay_url="http://r"),
             endpoint=moto_server.endpoint, region="us-east-1")


def test_failure_after_create_aborts_the_upload(moto_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    b = moto_server.bucket()
    from s3mpu.admin import presign

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("presign failed")

    monkeypatch.setattr(presign.Presigner, "part_urls", boom)
    with pytest.raises(RuntimeError):
        _mint(moto_server, b, size=MiB)
    assert moto_server.client().list_multipart_uploads(Bucket=b).get("Uploads", []) == []


def test_refresh_keeps_upload_and_moves_expiry(rclone_server: S3Server) -> None:
    c, m = _mint(rclone_server, rclone_server.bucket(), size=6 * MiB, part_size=5 * MiB,
                 expires=NOW + timedelta(hours=1), relay_url="http://relay")
    new = refresh(c, m, expires=NOW + timedelta(days=2), relay_secret="sekrit")
    assert new.upload_id == m.upload_id and new.parts[1].size == m.parts[1].size
    assert new.expires > m.expires and new.parts[0].url != m.parts[0].url
    assert tokens.verify(new.relay.token, ["sekrit"]).expires == int(new.expires.timestamp())


def test_rclone_refuses_wrong_length_on_signed_url(rclone_server: S3Server) -> None:
    """S3 itself enforces the part size of an exact manifest (strict server checks the signature)."""
    _c, m = _mint(rclone_server, rclone_server.bucket(), size=6 * MiB, part_size=5 * MiB)
    http = urllib3.PoolManager()
    bad = http.request("PUT", m.parts[1].url, body=b"x" * (MiB - 1))
    assert bad.status == 403 and b"SignatureDoesNotMatch" in bad.data
    good = http.request("PUT", m.parts[1].url, body=b"x" * MiB)
    assert good.status == 200
