"""Arbitrary JSON, forms and tokens at every relay endpoint: never a 5xx, always a JSON answer.

The Flask test client keeps it fast (no sockets); the relay behind it talks to the session's
moto server, so a valid token or API token sometimes gets through to S3 and the deeper checks
(parts, sizes, expiries, policies) are fuzzed too. 500 examples per endpoint, in CI as well.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay_fixtures import API_TOKENS, RELAY_SECRET, mint_for, relay_settings
from s3mpu import token as tokens
from s3mpu.relay.app import create_app
from s3mpu.relay.config import ApiToken, RelayConfig, token_sha256

JSON_ENDPOINTS = ["/v1/complete", "/v1/status", "/v1/abort", "/v1/refresh", "/v1/tail", "/v1/mint"]
FORM_ENDPOINTS = ["/presign", "/complete"]
MiB = 1024 * 1024
FUZZ = settings(max_examples=500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.sampled_from(["abc", "x", "", "1e400", "999999999999", "-1", "0", "../x", "a//b", "\r\nX: y",
                              "7d", "+3600", "9" * 40, "\udcff"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=15)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _mac(payload: str) -> bytes:
    """The relay token MAC (HMAC-SHA256 over ``v1.<payload>``): a signed token with a garbage identity."""
    return hmac.new(RELAY_SECRET.encode(), f"v1.{payload}".encode(), hashlib.sha256).digest()


@pytest.fixture(scope="module")
def target(moto_server: Any) -> dict[str, Any]:
    """A relay app on moto with API tokens and the seed API, a valid manifest token and its pieces."""
    bucket = moto_server.bucket()
    api = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "in/", 64 * MiB, 86400),)
    config = RelayConfig(settings=relay_settings(moto_server), api_tokens=api, seed_bucket=bucket,
                         public_url="https://relay.example")
    app = create_app(config)
    m = mint_for(moto_server, bucket, "fuzz/k", "https://relay.example", size=10 * MiB, part_size=5 * MiB)
    return {"client": app.test_client(), "bucket": bucket, "token": m.relay.token}


@functools.lru_cache(maxsize=None)
def token_strategy(valid: str) -> st.SearchStrategy[Any]:
    prefix, payload, mac = valid.split(".")
    deep = _b64(b"[" * 100_000 + b"]" * 100_000)
    signed_garbage = st.dictionaries(st.sampled_from(list(tokens.Identity.__dataclass_fields__)), json_values,
                                     max_size=9).map(
        lambda d: (lambda p: f"v1.{p}.{_b64(_mac(p))}")(_b64(json.dumps(d).encode())))
    return st.one_of(
        json_values,
        st.just(valid),
        st.just(f"v1.{deep}.{mac}"),
        st.integers(0, len(valid) - 1).flatmap(lambda i: st.characters().map(lambda c: valid[:i] + c + valid[i + 1:])),
        st.text(max_size=200).map(lambda t: f"v1.{_b64(t.encode('utf-8', 'surrogatepass'))}.{mac}"),
        json_values.map(lambda v: f"v1.{_b64(json.dumps(v).encode())}.{mac}"),
        st.sampled_from([f"{prefix}.{payload}.{mac}=", f"{prefix}.{payload}==.{mac}", f"{prefix}.{payload}.{mac}\n",
                         f"v2.{payload}.{mac}", "v1..", "v1.a.b.c", "." * 5]),
        signed_garbage,
    )


@functools.lru_cache(maxsize=None)
def body_strategy(valid: str, bucket: str) -> st.SearchStrategy[Any]:
    parts = st.lists(st.fixed_dictionaries({}, optional={"number": json_values, "etag": json_values,
                                                          "size": json_values}), max_size=4) | json_values
    fields = {"token": token_strategy(valid), "parts": parts, "size": json_values, "expires": json_values,
              "bucket": st.sampled_from([bucket, "other", ""]) | json_values,
              "key": st.sampled_from(["in/x", "in/../x", "in//x", "in/./x", "in/" + "k" * 1100]) | json_values,
              "max_size": json_values, "part_size": json_values, "md5s": json_values, "metadata": json_values,
              "content_type": json_values, "md5_digest": json_values}
    return st.one_of(st.fixed_dictionaries({}, optional=fields), json_values)


raw_bodies = st.sampled_from([b"[" * 100_000 + b"]" * 100_000, b'{"token": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                              b"\xff\xfe{", b'{"a": 1e400}', b'{"a": NaN}', b'{"a": Infinity}', b"",
                              b'{"token": "x"' * 1000, b"9" * 5000]) | st.binary(max_size=200)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data", ""])


def check(resp: Any) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.get_data()[:300])
    assert resp.mimetype == "application/json", resp.get_data()[:200]
    doc = json.loads(resp.get_data())
    assert isinstance(doc, dict)
    if resp.status_code >= 400:
        assert isinstance(doc.get("error"), str) and isinstance(doc.get("message"), str)


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@FUZZ
@given(data=st.data())
def test_json_endpoints_never_5xx(target: dict[str, Any], path: str, data: st.DataObject) -> None:
    client = target["client"]
    auth = data.draw(st.sampled_from([None, f"Bearer {API_TOKENS[0]}", "Bearer nope", "Basic x", "Bearer "]))
    headers = {"Authorization": auth} if auth else {}
    if data.draw(st.integers(0, 9)) == 0:
        resp = client.post(path, data=data.draw(raw_bodies), content_type=data.draw(content_types), headers=headers)
    else:
        body = data.draw(body_strategy(target["token"], target["bucket"]))
        resp = client.post(path, data=json.dumps(body), content_type=data.draw(content_types), headers=headers)
    check(resp)


@pytest.mark.parametrize("path", FORM_ENDPOINTS)
@FUZZ
@given(data=st.data())
def test_seed_endpoints_never_5xx(target: dict[str, Any], path: str, data: st.DataObject) -> None:
    client = target["client"]
    text = st.text(max_size=40) | st.sampled_from(["1B2M2Y8AsgTpgAmY7PhCfg==", "in/x", "in/../x", "999999999999",
                                                   "public-read-write", "private", "s3mpu-seed1.e30.x"])
    keys = st.sampled_from(["keyname", "uploadid", "expires", "contenttype", "x-amz-acl", "x-amz-meta-a", "1", "2",
                            "3", "10001", "0"]) | st.text(max_size=8)
    form = data.draw(st.dictionaries(keys, text, max_size=8))
    auth = data.draw(st.sampled_from([None, f"Bearer {API_TOKENS[0]}", "Bearer nope"]))
    resp = client.post(path, data=form, headers={"Authorization": auth} if auth else {})
    check(resp)


def test_every_method_and_unknown_path_is_json(target: dict[str, Any]) -> None:
    client = target["client"]
    for path in [*JSON_ENDPOINTS, *FORM_ENDPOINTS, "/healthz", "/nope", "/v1/"]:
        for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"):
            resp = client.open(path, method=method)
            assert resp.status_code < 500 and resp.mimetype == "application/json", (path, method, resp.status_code)
