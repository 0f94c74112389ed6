"""The seed article's client, replayed request by request against ``s3mpu relay --seed-api``.

The seed's client posts a form (``keyname``, ``expires``, ``contenttype``, ``x-amz-acl``,
``x-amz-meta-*``, one base64 MD5 per numbered part), PUTs each part to its URL with that
Content-MD5, then posts ``keyname`` + ``uploadid`` to ``/complete``. It must work unchanged.
"""
from __future__ import annotations

import base64
import hashlib
import json

import pytest
import urllib3

from relay_fixtures import API_TOKENS, relay_settings
from s3mpu.relay.config import ApiToken, token_sha256
from s3mpu.relay.server import start_relay

pytestmark = pytest.mark.usefixtures("no_secrets_in_logs")
HTTP = urllib3.PoolManager(retries=False)
MiB = 1024 * 1024


def form(url: str, path: str, fields: dict[str, str], headers: dict[str, str] | None = None):
    r = HTTP.request("POST", url + path, fields=fields, encode_multipart=False, headers=headers)
    return r.status, json.loads(r.data)


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def seed_client(url: str, key: str, data: bytes, chunk: int, headers: dict[str, str] | None = None) -> dict:
    """What the seed's client does, in order."""
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    fields = {"keyname": key, "expires": "3600", "contenttype": "video/mp4", "x-amz-acl": "private",
              "x-amz-meta-author": "seed client", "x-amz-meta-project": "s3mpu"}
    fields.update({str(i): b64md5(c) for i, c in enumerate(chunks, 1)})
    status, doc = form(url, "/presign", fields, headers)
    assert status == 201, doc
    assert set(doc) == {"UploadID", *[str(i) for i in range(1, len(chunks) + 1)]}
    for i, c in enumerate(chunks, 1):
        r = HTTP.request("PUT", doc[str(i)], body=c, headers={"Content-MD5": b64md5(c)})
        assert r.status == 200, (i, r.status, r.data[:300])
    status, done = form(url, "/complete", {"keyname": key, "uploadid": doc["UploadID"]}, headers)
    assert (status, done["status_code"]) == (200, 200), done
    return doc


OPEN = {"seed_open": True, "seed_prefix": "drop/"}


def upload_id_of(doc: dict) -> str:
    """The S3 upload id inside a /presign answer (the UploadID itself is the relay's signed ticket)."""
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(doc["1"]).query)["uploadId"][0]


def test_seed_client_unchanged(s3) -> None:
    bucket = s3.bucket()
    data = bytes(range(256)) * (4 * 11 * 1024) + b"end"  # 11 MiB + 3: three parts of 5 MiB
    with start_relay(relay_settings(s3), seed_bucket=bucket, **OPEN) as relay:
        doc = seed_client(relay.url, "seed/video.mp4", data, 5 * MiB)
        # the seed's client retries /complete when a reply is lost: the same success again
        status, again = form(relay.url, "/complete", {"keyname": "seed/video.mp4", "uploadid": doc["UploadID"]})
        assert (status, again["status_code"]) == (200, 200)
    admin = s3.client()
    assert admin.get_object(Bucket=bucket, Key="drop/seed/video.mp4")["Body"].read() == data  # under the prefix
    head = admin.head_object(Bucket=bucket, Key="drop/seed/video.mp4")
    meta = {k.lower(): v for k, v in head["Metadata"].items()}
    assert meta == {"author": "seed client", "project": "s3mpu"}
    assert head["ContentType"] == "video/mp4"


def test_part_urls_bind_content_md5(rclone_server) -> None:
    """rclone checks the signed Content-MD5: a PUT without it is refused."""
    bucket = rclone_server.bucket()
    with start_relay(relay_settings(rclone_server), seed_bucket=bucket, **OPEN) as relay:
        status, doc = form(relay.url, "/presign", {"keyname": "k", "1": b64md5(b"hello")})
        assert status == 201
        r = HTTP.request("PUT", doc["1"], body=b"hello")  # no Content-MD5 header
        assert r.status in (400, 403)
        r = HTTP.request("PUT", doc["1"], body=b"hello", headers={"Content-MD5": b64md5(b"hello")})
        assert r.status == 200


def test_seed_complete_failures_are_422(s3) -> None:
    bucket = s3.bucket()
    with start_relay(relay_settings(s3), seed_bucket=bucket, **OPEN) as relay:
        status, doc = form(relay.url, "/complete", {"keyname": "nope", "uploadid": "no-such-upload-id"})
        assert status == 404 and doc["status_code"] == 404 and doc["error"] == "no_such_upload"
        part = b"p" * (5 * MiB)
        status, doc = form(relay.url, "/presign", {"keyname": "gap", "1": b64md5(part), "2": b64md5(part),
                                                   "3": b64md5(b"x")})
        for n, body in ((1, part), (3, b"x")):
            assert HTTP.request("PUT", doc[str(n)], body=body, headers={"Content-MD5": b64md5(body)}).status == 200
        status, err = form(relay.url, "/complete", {"keyname": "gap", "uploadid": doc["UploadID"]})
        assert status == 422 and "2" in err["message"]
        assert s3.client().list_parts(Bucket=bucket, Key="drop/gap", UploadId=upload_id_of(doc))["Parts"]  # kept
        status, err = form(relay.url, "/presign", {"keyname": "bad", "1": "not-base64-md5"})
        assert status == 400
        status, err = form(relay.url, "/presign", {"keyname": "bad", "1": b64md5(b"a"), "3": b64md5(b"c")})
        assert status == 400 and "without gaps" in err["message"]


def test_seed_requires_api_token_when_configured(moto_server) -> None:
    bucket = moto_server.bucket()
    tokens = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "up/", 64 * MiB, 86400),)
    with start_relay(relay_settings(moto_server), seed_bucket=bucket, api_tokens=tokens) as relay:
        status, doc = form(relay.url, "/presign", {"keyname": "up/k", "1": b64md5(b"a")})
        assert status == 401
        auth = {"Authorization": f"Bearer {API_TOKENS[0]}"}
        status, doc = form(relay.url, "/presign", {"keyname": "other/k", "1": b64md5(b"a")}, auth)
        assert status == 403
        status, doc = form(relay.url, "/presign", {"keyname": "up/k", "expires": "999999", "1": b64md5(b"a")}, auth)
        assert status == 403
        seed_client(relay.url, "up/k", b"small object", 5 * MiB, auth)
    assert moto_server.client().get_object(Bucket=bucket, Key="up/k")["Body"].read() == b"small object"
    assert moto_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
