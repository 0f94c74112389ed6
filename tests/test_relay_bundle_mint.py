"""``POST /v1/mint`` with a prefix: bundles bounded by the API token (prefix, size per file, max_files,
max_total_size, expiry, max_uploads); every object judged like a single key; hostile bodies never 5xx."""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay_fixtures import API_TOKENS, RELAY_SECRET, relay_settings
from s3mpu import bundle as bundles
from s3mpu import token as tokens
from s3mpu.errors import ConfigError
from s3mpu.relay.app import create_app
from s3mpu.relay.config import ApiToken, RelayConfig, load_api_tokens, token_sha256
from s3mpu.relay.server import start_relay
from servers import S3Server

MiB = 1024 * 1024
ALICE = API_TOKENS[0]
AUTH = {"Authorization": f"Bearer {ALICE}"}
HTTP = urllib3.PoolManager(retries=False)


def policy(bucket: str, **changes: Any) -> tuple[ApiToken, ...]:
    fields: dict[str, Any] = {"name": "alice", "sha256": token_sha256(ALICE).hex(), "bucket": bucket, "prefix": "in/",
                              "max_size": 20 * MiB, "max_expires": 3600, "max_files": 5, "max_total_size": 30 * MiB}
    fields.update(changes)
    return (ApiToken(**fields),)


def app_for(server: S3Server, bucket: str, client_factory: Any = None, **changes: Any) -> Any:
    config = RelayConfig(settings=relay_settings(server), api_tokens=policy(bucket, **changes),
                         public_url="https://relay.example", s3_client_factory=client_factory)
    return create_app(config).test_client()


def md5s(data: bytes, part: int = 5 * MiB) -> list[str]:
    return [hashlib.md5(data[o:o + part]).hexdigest() for o in range(0, max(1, len(data)), part)]


def body(bucket: str, objects: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    objs = objects if objects is not None else [
        {"path": "a.txt", "size": 1, "md5s": md5s(b"a")},
        {"path": "sub/big.bin", "size": 11 * MiB, "part_size": 5 * MiB},
        {"path": "empty", "size": 0}]
    return {"bucket": bucket, "prefix": "in/batch/", "objects": objs, **extra}


def post(client: Any, doc: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    r = client.post("/v1/mint", data=json.dumps(doc), content_type="application/json",
                    headers=AUTH if headers is None else headers)
    return r.status_code, json.loads(r.get_data())


def in_progress(server: S3Server, bucket: str) -> int:
    return len(server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_mints_a_bundle(moto_server: S3Server) -> None:
    bucket = moto_server.bucket()
    status, doc = post(app_for(moto_server, bucket), body(bucket, content_type="text/plain", metadata={"a": "b"},
                                                           expires="30m"))
    assert status == 201, doc
    b = bundles.Bundle.from_dict(doc)
    assert [o.key for o in b.objects] == ["in/batch/a.txt", "in/batch/sub/big.bin", "in/batch/empty"]
    a, big, empty = b.objects
    assert a.md5 == md5s(b"a")[0] and empty.md5 is None and a.headers["x-amz-meta-a"] == "b"
    assert a.content_type == "text/plain" and a.headers["content-type"] == "text/plain"
    assert big.manifest is not None and len(big.manifest.parts) == 3 and big.manifest.relay is not None
    ident = tokens.verify(big.manifest.relay.token or "", [RELAY_SECRET])
    assert ident.policy == "alice" and ident.policy_max_expires == 3600
    assert in_progress(moto_server, bucket) == 1


@pytest.mark.parametrize("change, status, words", [
    (lambda d: d["objects"][1].update(path="../x"), 400, ["objects[1].path", "'..'"]),
    (lambda d: d["objects"][0].update(path="/abs"), 400, ["objects[0].path", "absolute"]),
    (lambda d: d["objects"][0].update(path="a\\b"), 400, ["backslash"]),
    (lambda d: d["objects"][0].update(path="x" * 1100), 400, ["1024-byte"]),
    (lambda d: d["objects"].append({"path": "a.txt", "size": 1}), 400, ["objects[3].path", "twice"]),
    (lambda d: d.update(prefix="out/"), 403, ["objects[0]", "'a.txt'", "in/*"]),
    (lambda d: d.update(prefix="in/../"), 403, ["'..'"]),
    (lambda d: d.update(prefix="in"), 400, ["ending in"]),
    (lambda d: d.update(bucket="other"), 403, ["may not mint"]),
    (lambda d: d["objects"][1].update(size=21 * MiB), 403, ["objects[1]", "big.bin", "20971520"]),
    (lambda d: d["objects"].extend({"path": f"f{i}", "size": 1} for i in range(3)), 403, ["at most 5 file"]),
    (lambda d: d["objects"].extend({"path": f"g{i}", "size": 10 * MiB} for i in range(2)), 403, ["31457280"]),
    (lambda d: d["objects"][0].update(md5s=["0" * 32, "1" * 32]), 400, ["objects[0]", "1 hex MD5"]),
    (lambda d: d["objects"][0].update(md5s=["zz"]), 400, ["md5s"]),
    (lambda d: d["objects"][1].update(part_size=MiB), 400, ["objects[1]", "5 MiB"]),
    (lambda d: d["objects"][0].update(size=-1), 400, ["size"]),
    (lambda d: d["objects"][0].update(owner="x"), 400, ["unknown field"]),
    (lambda d: d.update(key="x"), 400, ["unknown field"]),
    (lambda d: d.update(objects=[]), 400, ["non-empty"]),
    (lambda d: d.update(expires="2h"), 403, ["expiry"]),
    (lambda d: d.update(content_type="text/plain\r\nX-Evil: 1"), 400, ["content_type"]),
    (lambda d: d.update(metadata={"a b": "c"}), 400, ["metadata"]),
    (lambda d: d.update(metadata={"a": "\u00e9"}), 400, ["metadata"]),
])
def test_refusals_name_the_file_and_create_nothing(moto_server: S3Server, change: Any, status: int,
                                                   words: list[str]) -> None:
    bucket = moto_server.bucket()
    doc = body(bucket)
    change(doc)
    got, answer = post(app_for(moto_server, bucket), doc)
    assert got == status, answer
    for w in words:
        assert w in answer["message"] + answer.get("hint", ""), answer
    assert in_progress(moto_server, bucket) == 0


def test_a_token_without_max_files_is_bounded_too(moto_server: S3Server) -> None:
    from s3mpu.relay.bundle_mint import DEFAULT_MAX_FILES

    bucket = moto_server.bucket()
    many = [{"path": f"f{i}", "size": 0} for i in range(DEFAULT_MAX_FILES + 1)]
    status, doc = post(app_for(moto_server, bucket, max_files=None, max_total_size=None), body(bucket, many))
    assert status == 403 and f"at most {DEFAULT_MAX_FILES} file" in doc["message"]


def test_auth_is_checked_first(moto_server: S3Server) -> None:
    bucket = moto_server.bucket()
    assert post(app_for(moto_server, bucket), body(bucket), headers={})[0] == 401
    assert post(app_for(moto_server, bucket), body(bucket), headers={"Authorization": "Bearer nope"})[0] == 401


def test_max_uploads_counts_the_bundle_s_multipart_objects(moto_server: S3Server) -> None:
    bucket = moto_server.bucket()
    client = app_for(moto_server, bucket, max_uploads=2)
    three = [{"path": f"b{i}", "size": 9 * MiB} for i in range(3)]
    status, doc = post(client, body(bucket, three))
    assert status == 429 and "at most 2 upload" in doc["message"]
    assert in_progress(moto_server, bucket) == 0
    assert post(client, body(bucket, three[:2]))[0] == 201
    assert post(client, body(bucket, [{"path": "small", "size": 10}]))[0] == 201  # single PUTs create no upload
    assert post(client, body(bucket, three[2:]))[0] == 429
    assert in_progress(moto_server, bucket) == 2


class FailingSecond:
    """The relay's S3 client, failing its second CreateMultipartUpload."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls, self.meta = real, itertools.count(1), real.meta

    def create_multipart_upload(self, **kw: Any) -> Any:
        if next(self.calls) == 2:  # next() on a count is atomic: exactly one call fails
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, "CreateMultipartUpload")
        return self.real.create_multipart_upload(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_failed_mint_leaves_no_upload_behind(moto_server: S3Server) -> None:
    bucket = moto_server.bucket()
    client = app_for(moto_server, bucket, client_factory=lambda: FailingSecond(moto_server.client()))
    status, doc = post(client, body(bucket, [{"path": f"b{i}", "size": 9 * MiB} for i in range(3)]))
    assert status == 502 and doc["error"] == "upstream_error"  # S3 failed: retry later, not the caller's fault
    assert in_progress(moto_server, bucket) == 0


def test_tokens_file_bounds(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"tokens": [{"token": "x" * 20, "bucket": "b", "max_files": 10, "max_total_size": "1G"}]}))
    (t,) = load_api_tokens(f)
    assert (t.max_files, t.max_total_size) == (10, 1024 ** 3)
    for bad in ({"max_files": 0}, {"max_files": True}, {"max_total_size": "lots"}):
        f.write_text(json.dumps({"tokens": [{"token": "x" * 20, "bucket": "b", **bad}]}))
        with pytest.raises(ConfigError, match="max_"):
            load_api_tokens(f)


# -- hostile bodies: never a 5xx -------------------------------------------------------------
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=20) | st.sampled_from(["", "../x", "a//b", "in/", "\udcff", "\r\nX: y", "0" * 32]))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                      max_leaves=12)


@pytest.fixture(scope="module")
def fuzz_client(moto_server: S3Server) -> tuple[Any, str]:
    bucket = moto_server.bucket()
    return app_for(moto_server, bucket, max_uploads=1000), bucket


def objects_strategy() -> st.SearchStrategy[Any]:
    one = st.fixed_dictionaries({}, optional={
        "path": st.sampled_from(["a", "d/e.txt", "../x", "a//b", "./a", "x" * 1100, "\udcff", "a\\b", "a\x00"]) | values,
        "size": st.sampled_from([0, 1, 5 * MiB, 6 * MiB, 21 * MiB, 2**63, -1]) | values,
        "part_size": st.sampled_from([None, 1, 5 * MiB, 2**40]) | values,
        "md5s": st.sampled_from([None, ["0" * 32], ["0" * 32, "f" * 32], ["x"]]) | values,
        "extra": values})
    return st.lists(one, max_size=6) | values


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_bundle_bodies_never_5xx(fuzz_client: tuple[Any, str], data: st.DataObject) -> None:
    client, bucket = fuzz_client
    doc = data.draw(st.fixed_dictionaries({"prefix": st.sampled_from(["in/", "in/x/", "", "out/", "in", "in/../"])
                                                     | values}, optional={
        "bucket": st.sampled_from([bucket, "other"]) | values, "objects": objects_strategy(),
        "expires": st.sampled_from(["30m", "2h", "+10", "1e400", -1]) | values,
        "content_type": st.sampled_from(["text/plain", "a\nb", ""]) | values,
        "metadata": st.sampled_from([{"a": "b"}, {"": "x"}, {"a": "\u00e9"}]) | values}))
    r = client.post("/v1/mint", data=json.dumps(doc), content_type="application/json", headers=AUTH)
    assert r.status_code < 500, (r.status_code, r.get_data()[:300])
    answer = json.loads(r.get_data())
    assert r.status_code == 201 or isinstance(answer.get("message"), str)


# -- real HTTP on the strict server ----------------------------------------------------------
def test_over_http_on_rclone_a_single_put_lands_and_limits_hold(rclone_server: S3Server) -> None:
    bucket = rclone_server.bucket()
    relay = start_relay(relay_settings(rclone_server), api_tokens=policy(bucket, max_files=2, max_uploads=1))
    try:
        def call(doc: Any) -> tuple[int, dict[str, Any]]:
            r = HTTP.request("POST", relay.url + "/v1/mint", body=json.dumps(doc).encode(),
                             headers={"Content-Type": "application/json", **AUTH})
            return r.status, json.loads(r.data)

        status, doc = call(body(bucket, [{"path": "n\u00e9e.txt", "size": 3, "md5s": md5s(b"abc")},
                                         {"path": "b.bin", "size": 9 * MiB}], content_type="text/plain"))
        assert status == 201, doc
        o = bundles.Bundle.from_dict(doc).objects[0]
        hdrs = {**o.headers, "Content-Length": "3",
                "Content-MD5": base64.b64encode(hashlib.md5(b"abc").digest()).decode()}
        assert HTTP.request("PUT", o.url or "", body=b"abd", headers=hdrs).status in (400, 403)
        assert HTTP.request("PUT", o.url or "", body=b"abc", headers=hdrs).status == 200
        got = rclone_server.client().get_object(Bucket=bucket, Key="in/batch/n\u00e9e.txt")
        assert got["Body"].read() == b"abc" and got["ContentType"] == "text/plain"
        status, doc = call(body(bucket, [{"path": f"f{i}", "size": 1} for i in range(3)]))
        assert status == 403 and "at most 2 file" in doc["message"]
        status, doc = call(body(bucket, [{"path": "c.bin", "size": 9 * MiB}]))
        assert status == 429 and in_progress(rclone_server, bucket) == 1
    finally:
        relay.stop()


def test_a_bundle_mint_is_audited_per_multipart_upload_under_the_token_name(moto_server: S3Server,
                                                                           relay_logs: Any) -> None:
    import json

    bucket = moto_server.bucket()
    status, doc = post(app_for(moto_server, bucket), body(bucket))
    assert status == 201, doc
    big = bundles.Bundle.from_dict(doc).objects[1].manifest
    assert big is not None
    audit = [json.loads(r.getMessage()) for r in relay_logs.records if r.name == "s3mpu.relay.audit"]
    minted = [a for a in audit if a["audit"] == "minted"]
    assert [(a["who"], a["upload_id"], a["key"]) for a in minted] == [("alice", big.upload_id, big.key)]
    refused = post(app_for(moto_server, bucket), body(bucket, prefix="out/"))
    assert refused[0] == 403
    audit = [json.loads(r.getMessage()) for r in relay_logs.records if r.name == "s3mpu.relay.audit"]
    assert audit[-1]["audit"] == "refused" and audit[-1]["who"] == "alice"
