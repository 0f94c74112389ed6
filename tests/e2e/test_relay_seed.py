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


# -- issue 10 findings 1 and 2 -------------------------------------------------------------------
def test_open_seed_api_needs_open_flag_and_prefix(moto_server) -> None:
    from s3mpu.errors import ConfigError

    bucket = moto_server.bucket()
    for options in ({}, {"seed_open": True}, {"seed_prefix": "drop/"}):
        with pytest.raises(ConfigError, match="overwrite any object"):
            start_relay(relay_settings(moto_server), seed_bucket=bucket, **options)
    with start_relay(relay_settings(moto_server), seed_bucket=bucket, **OPEN) as relay:
        status, doc = form(relay.url, "/presign", {"keyname": "../escape", "1": b64md5(b"x")})
        assert status == 403  # a dot segment cannot climb out of the prefix
        seed_client(relay.url, "k", b"anonymous", 5 * MiB)
    keys = [o["Key"] for o in moto_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["drop/k"]


def test_seed_canned_acl_only_when_allowed(moto_server) -> None:
    bucket = moto_server.bucket()
    admin = moto_server.client()
    with start_relay(relay_settings(moto_server), seed_bucket=bucket, **OPEN) as relay:
        for acl in ("public-read-write", "public-read", "authenticated-read"):
            status, doc = form(relay.url, "/presign", {"keyname": "a", "x-amz-acl": acl, "1": b64md5(b"a")})
            assert (status, doc["error"]) == (403, "forbidden"), acl
        assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # nothing created
    with start_relay(relay_settings(moto_server), seed_bucket=bucket, seed_acls=("public-read",), **OPEN) as relay:
        status, doc = form(relay.url, "/presign", {"keyname": "p", "x-amz-acl": "public-read", "1": b64md5(b"p")})
        assert status == 201
        assert form(relay.url, "/presign", {"keyname": "q", "x-amz-acl": "public-read-write",
                                            "1": b64md5(b"q")})[0] == 403
    tokens = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "", None, 86400, acls=("public-read",)),)
    auth = {"Authorization": f"Bearer {API_TOKENS[0]}"}
    with start_relay(relay_settings(moto_server), seed_bucket=bucket, api_tokens=tokens) as relay:
        assert form(relay.url, "/presign", {"keyname": "t", "x-amz-acl": "public-read", "1": b64md5(b"t")},
                    auth)[0] == 201
        assert form(relay.url, "/presign", {"keyname": "t", "x-amz-acl": "public-read-write", "1": b64md5(b"t")},
                    auth)[0] == 403


def test_seed_no_overwrite(moto_server) -> None:
    bucket = moto_server.bucket()
    admin = moto_server.client()
    admin.put_object(Bucket=bucket, Key="drop/taken", Body=b"original")
    with start_relay(relay_settings(moto_server), seed_bucket=bucket, seed_no_overwrite=True, **OPEN) as relay:
        status, doc = form(relay.url, "/presign", {"keyname": "taken", "1": b64md5(b"new")})
        assert (status, doc["error"]) == (409, "conflict")
        status, doc = form(relay.url, "/presign", {"keyname": "race", "1": b64md5(b"new")})
        assert status == 201
        r = HTTP.request("PUT", doc["1"], body=b"new", headers={"Content-MD5": b64md5(b"new")})
        assert r.status == 200
        admin.put_object(Bucket=bucket, Key="drop/race", Body=b"someone else was first")
        status, err = form(relay.url, "/complete", {"keyname": "race", "uploadid": doc["UploadID"]})
        assert status == 422 and err["error"] == "conflict"
    assert admin.get_object(Bucket=bucket, Key="drop/taken")["Body"].read() == b"original"
    assert admin.get_object(Bucket=bucket, Key="drop/race")["Body"].read() == b"someone else was first"
    tokens = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "drop/", None, 86400, no_overwrite=True),)
    auth = {"Authorization": f"Bearer {API_TOKENS[0]}"}
    with start_relay(relay_settings(moto_server), seed_bucket=bucket, api_tokens=tokens) as relay:
        assert form(relay.url, "/presign", {"keyname": "drop/taken", "1": b64md5(b"x")}, auth)[0] == 409
        seed_client(relay.url, "drop/fresh", b"fresh", 5 * MiB, auth)


def test_seed_complete_finishes_only_its_own_uploads(rclone_server) -> None:
    """The issue's case: a 12 MiB manifest with one 8 MiB part uploaded must not become an 8 MiB object."""
    from relay_fixtures import mint_for, put_parts

    bucket = rclone_server.bucket()
    admin = rclone_server.client()
    m = mint_for(rclone_server, bucket, "drop/big", None, size=12 * MiB, part_size=8 * MiB)
    put_parts(m, b"b" * (12 * MiB), numbers=[1])
    admin.put_object(Bucket=bucket, Key="drop/existing", Body=b"secret size")
    with start_relay(relay_settings(rclone_server), seed_bucket=bucket, **OPEN) as relay:
        status, doc = form(relay.url, "/complete", {"keyname": "big", "uploadid": m.upload_id})
        assert (status, doc["error"]) == (404, "no_such_upload")
        answers = [form(relay.url, "/complete", {"keyname": k, "uploadid": u})
                   for k, u in (("existing", "bogus"), ("absent", "bogus"), ("existing", m.upload_id))]
        for status, doc in answers:  # no existence oracle: the same answer whether the object exists
            assert status == 404 and "size" not in doc and "etag" not in doc
        assert len({(d["error"], d["message"]) for _s, d in answers}) == 1
        # a genuine ticket does not transfer to another key, nor survive an edit
        data = b"s" * (5 * MiB) + b"tail"
        ticket = seed_client(relay.url, "mine", data, 5 * MiB)["UploadID"]
        assert form(relay.url, "/complete", {"keyname": "big", "uploadid": ticket})[0] == 404
        edited = ticket[:-2] + ("A" if ticket[-2] != "A" else "B") + ticket[-1]
        assert form(relay.url, "/complete", {"keyname": "mine", "uploadid": edited})[0] == 404
    assert admin.list_parts(Bucket=bucket, Key="drop/big", UploadId=m.upload_id)["Parts"]  # untouched
    assert "Contents" not in admin.list_objects_v2(Bucket=bucket, Prefix="drop/big")
    assert admin.get_object(Bucket=bucket, Key="drop/mine")["Body"].read() == data


def test_seed_ticket_belongs_to_its_api_token(moto_server) -> None:
    bucket = moto_server.bucket()
    tokens = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "", None, 86400),
              ApiToken("bob", token_sha256(API_TOKENS[1]).hex(), bucket, "", None, 86400))
    alice, bob = ({"Authorization": f"Bearer {t}"} for t in API_TOKENS)
    with start_relay(relay_settings(moto_server), seed_bucket=bucket, api_tokens=tokens) as relay:
        status, doc = form(relay.url, "/presign", {"keyname": "a", "1": b64md5(b"a")}, alice)
        assert HTTP.request("PUT", doc["1"], body=b"a", headers={"Content-MD5": b64md5(b"a")}).status == 200
        assert form(relay.url, "/complete", {"keyname": "a", "uploadid": doc["UploadID"]}, bob)[0] == 404
        assert form(relay.url, "/complete", {"keyname": "a", "uploadid": doc["UploadID"]}, alice)[0] == 200


def test_seed_no_overwrite_is_atomic_where_s3_supports_it(moto_server) -> None:
    """Another writer lands between the relay's HEAD check and its complete: If-None-Match: * refuses it."""
    bucket = moto_server.bucket()
    admin = moto_server.client()
    with start_relay(relay_settings(moto_server), seed_bucket=bucket, seed_no_overwrite=True, **OPEN) as relay:
        status, doc = form(relay.url, "/presign", {"keyname": "late", "1": b64md5(b"mine")})
        assert HTTP.request("PUT", doc["1"], body=b"mine", headers={"Content-MD5": b64md5(b"mine")}).status == 200
        raced: list[bool] = []

        def competitor(**_kw) -> None:  # runs inside the relay, after its HEAD check, before it completes
            if not raced:
                raced.append(True)
                admin.put_object(Bucket=bucket, Key="drop/late", Body=b"theirs")

        relay.config.s3().meta.events.register("before-call.s3.CompleteMultipartUpload", competitor)
        status, err = form(relay.url, "/complete", {"keyname": "late", "uploadid": doc["UploadID"]})
        relay.config.s3().meta.events.unregister("before-call.s3.CompleteMultipartUpload", competitor)
    assert raced and status == 422 and err["error"] == "conflict", err
    assert admin.get_object(Bucket=bucket, Key="drop/late")["Body"].read() == b"theirs"
