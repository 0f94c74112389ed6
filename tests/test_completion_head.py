"""HeadObject only when the complete reply does not prove the object (SPEC §4), on real servers.

The relay's own S3 client is watched with botocore event hooks, so the calls counted are the
ones the relay really sends to rclone (strict) or moto.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from relay_fixtures import mint_for, put_parts
from s3mpu.admin.completion import complete_upload
from s3mpu.errors import DataError
from s3mpu.layout import composite_etag
from s3mpu.token import Identity
from s3mpu.user.relayclient import RelayClient

MiB = 1024 * 1024
PS = 5 * MiB


class Calls:
    """Names of the S3 operations a botocore client sends (real calls to a real server)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.ops: list[str] = []
        client.meta.events.register("before-call.s3", self._seen, unique_id=f"calls-{id(self)}")

    def _seen(self, model: Any, **_kw: Any) -> None:
        self.ops.append(model.name)

    def close(self) -> None:
        self.client.meta.events.unregister("before-call.s3", unique_id=f"calls-{id(self)}")


@pytest.fixture
def relay_calls(relay: Any) -> Iterator[Calls]:
    calls = Calls(relay.config.s3())
    yield calls
    calls.close()


def _data(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    return (block * (size // len(block) + 1))[:size]


def test_relay_completes_without_head_and_retries_give_the_same_etag(s3: Any, relay: Any, relay_calls: Calls) -> None:
    data = _data(2 * PS + 123, 1)
    m = mint_for(s3, s3.bucket(), "obj", relay.url, size=len(data), part_size=PS)
    sent = put_parts(m, data)
    client = RelayClient(relay.url)
    first = client.complete(m.relay.token, parts=sent, size=len(data))
    assert relay_calls.ops == ["ListParts", "CompleteMultipartUpload"]  # no HeadObject
    assert first["etag"] == composite_etag([p["etag"] for p in sent]) and first["size"] == len(data)

    relay_calls.ops.clear()
    again = client.complete(m.relay.token, parts=sent, size=len(data))
    assert again["etag"] == first["etag"] and again["size"] == len(data) and again["parts"] == 3
    assert relay_calls.ops == ["ListParts", "HeadObject"]  # the upload is gone: the object must be checked
    if "md5" in again:  # rclone: HEAD reports the plain MD5 of the object, kept beside the composite
        assert again["md5"] == hashlib.md5(data).hexdigest()
    assert s3.client().get_object(Bucket=m.bucket, Key="obj")["Body"].read() == data


def _plain_etag_reply(client: Any, etag: str) -> None:
    """Make the server's CompleteMultipartUpload reply carry a plain ETag (as s3rver's does)."""
    def rewrite(parsed: dict[str, Any], **_kw: Any) -> None:
        parsed["ETag"] = f'"{etag}"'

    client.meta.events.register("after-call.s3.CompleteMultipartUpload", rewrite)


def test_reply_that_does_not_prove_the_object_runs_head(rclone_server: Any) -> None:
    data = _data(PS + 7, 2)
    m = mint_for(rclone_server, rclone_server.bucket(), "obj", None, size=len(data), part_size=PS)
    sent = put_parts(m, data)
    client = rclone_server.client()
    calls = Calls(client)
    whole = hashlib.md5(data).hexdigest()
    _plain_etag_reply(client, whole)
    out = complete_upload(client, Identity.from_manifest(m), sent, len(data))
    assert calls.ops == ["ListParts", "CompleteMultipartUpload", "HeadObject"]
    composite = composite_etag([p["etag"] for p in sent])
    assert out == {"etag": composite, "md5": whole, "size": len(data), "key": "obj", "bucket": m.bucket, "parts": 2}
    again = complete_upload(rclone_server.client(), Identity.from_manifest(m), sent, len(data))
    assert again["etag"] == composite and again["md5"] == whole


def test_head_showing_another_size_is_refused(rclone_server: Any) -> None:
    data = _data(PS + 9, 3)
    m = mint_for(rclone_server, rclone_server.bucket(), "obj", None, size=len(data), part_size=PS)
    sent = put_parts(m, data)
    client = rclone_server.client()
    _plain_etag_reply(client, "0" * 32)

    def shrink(parsed: dict[str, Any], **_kw: Any) -> None:
        parsed["ContentLength"] = len(data) - 1

    client.meta.events.register("after-call.s3.HeadObject", shrink)
    with pytest.raises(DataError, match=f"has {len(data) - 1} bytes after complete, expected {len(data)}"):
        complete_upload(client, Identity.from_manifest(m), sent, len(data))
