"""Seed API grants (issue 10, 5): part URLs sign their lengths when the form gives them; max_uploads holds."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest
import urllib3

from relay_fixtures import API_TOKENS, relay_settings
from s3mpu.relay.config import ApiToken, token_sha256
from s3mpu.relay.server import start_relay
from s3mpu.user.tail import signed_length

pytestmark = pytest.mark.usefixtures("no_secrets_in_logs")
HTTP = urllib3.PoolManager(retries=False)
MiB = 1024 * 1024


def _b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _presign(url: str, fields: dict[str, str], bearer: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    r = HTTP.request("POST", url + "/presign", fields=fields, encode_multipart=False, headers=headers)
    return r.status, json.loads(r.data)


def test_seed_urls_sign_the_lengths_the_form_gives(rclone_server) -> None:
    s3 = rclone_server
    bucket = s3.bucket()
    tokens = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "seed/", 12 * MiB, 3600),)
    big, small = b"A" * (8 * MiB), b"B" * 3
    with start_relay(relay_settings(s3), seed_bucket=bucket, api_tokens=tokens) as relay:
        # the holder declares a 5 MiB part size but hashes an 8 MiB first part: S3 refuses it
        status, doc = _presign(relay.url, {"keyname": "seed/x", "size": str(5 * MiB + 3), "partsize": str(5 * MiB),
                                           "1": _b64md5(big), "2": _b64md5(small)}, API_TOKENS[0])
        assert status == 201, doc
        assert signed_length(doc["1"]) and signed_length(doc["2"])
        assert HTTP.request("PUT", doc["1"], body=big, headers={"Content-MD5": _b64md5(big)}).status in (400, 403)
        assert HTTP.request("PUT", doc["2"], body=small, headers={"Content-MD5": _b64md5(small)}).status == 200
        # a declared size beyond the policy, or a size that does not fit the MD5 count, creates nothing
        status, doc = _presign(relay.url, {"keyname": "seed/y", "size": str(13 * MiB), "partsize": str(5 * MiB),
                                           "1": _b64md5(b"1"), "2": _b64md5(b"2"), "3": _b64md5(b"3")}, API_TOKENS[0])
        assert status == 403, doc
        for fields in ({"size": str(20 * MiB), "partsize": str(5 * MiB)}, {"size": "10"}, {"partsize": "x", "size": "1"}):
            status, doc = _presign(relay.url, {"keyname": "seed/z", **fields, "1": _b64md5(b"1")}, API_TOKENS[0])
            assert status == 400, (fields, doc)
        # without size/partsize the seed's own client works unchanged (URLs bind only the MD5)
        status, doc = _presign(relay.url, {"keyname": "seed/w", "1": _b64md5(small)}, API_TOKENS[0])
        assert status == 201 and not signed_length(doc["1"])
    uploads = s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert sorted(u["Key"] for u in uploads) == ["seed/w", "seed/x"]


def test_seed_presign_obeys_max_uploads(s3) -> None:
    bucket = s3.bucket()
    tokens = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "seed/", None, 3600, 1),)
    with start_relay(relay_settings(s3), seed_bucket=bucket, api_tokens=tokens) as relay:
        status, doc = _presign(relay.url, {"keyname": "seed/a", "1": _b64md5(b"a")}, API_TOKENS[0])
        assert status == 201, doc
        status, doc = _presign(relay.url, {"keyname": "seed/b", "1": _b64md5(b"b")}, API_TOKENS[0])
        assert status == 429 and doc["error"] == "too_many_uploads" and "at most 1 upload" in doc["message"], doc
    uploads = s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["seed/a"]
