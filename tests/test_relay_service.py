"""The relay as a service, over real HTTP: /readyz, /metrics, the audit trail, the live tokens file."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import urllib3
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from relay_fixtures import API_TOKENS, RELAY_SECRET, mint_for, put_parts, relay_settings
from s3mpu.relay.events import REASONS, refusal_reason
from s3mpu.relay.options import ServiceOptions
from s3mpu.relay.server import start_relay
from servers import SECRET_KEY, start_rclone

HTTP = urllib3.PoolManager(retries=False)


def get(url: str, path: str, **kw):
    r = HTTP.request(kw.pop("method", "GET"), url + path, timeout=10, **kw)
    return r.status, r.data, r.headers


def post(url: str, path: str, body: dict, headers: dict | None = None):
    r = HTTP.request("POST", url + path, body=json.dumps(body), timeout=30,
                     headers={"Content-Type": "application/json", **(headers or {})})
    return r.status, json.loads(r.data)


def metric(url: str, name: str, **labels: str) -> float:
    status, data, headers = get(url, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    total = 0.0
    for family in text_string_to_metric_families(data.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def tokens_file(path: Path, bucket: str, *names: str, max_uploads: int | None = None) -> Path:
    entries = [{"name": n, "token": API_TOKENS[i], "bucket": bucket, "prefix": "in/",
                **({"max_uploads": max_uploads} if max_uploads else {})} for i, n in enumerate(names)]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"tokens": entries}))
    os.replace(tmp, path)  # as an admin's editor or config management does
    return path


def live_relay(server, path: Path, bucket: str, **service):
    from s3mpu.relay.config import load_api_tokens

    opts = ServiceOptions(tokens_file=str(path), **service)
    return start_relay(relay_settings(server), api_tokens=load_api_tokens(path), service=opts)


# -- /readyz --------------------------------------------------------------------------------
def test_readyz_follows_s3_and_healthz_does_not(tmp_path) -> None:
    s3 = start_rclone(tmp_path / "store")
    bucket = s3.bucket()
    path = tokens_file(tmp_path / "tokens.json", bucket, "alice")
    relay = live_relay(s3, path, bucket, ready_ttl=0.0)
    try:
        status, data, _ = get(relay.url, "/readyz?verbose=1&key=in/x")  # the query string is ignored
        assert status == 200 and json.loads(data) == {"status": "ready", "s3": "ok", "tokens": {"ok": True}}
        s3.stop()
        status, data, _ = get(relay.url, "/readyz")
        assert status == 503 and json.loads(data)["s3"] == "unreachable" and bucket not in data.decode()
        assert get(relay.url, "/healthz")[0] == 200
        relay.ops.stopping()
        assert json.loads(get(relay.url, "/readyz")[1])["status"] == "stopping"
    finally:
        relay.stop()
        s3.stop()


def test_readyz_is_cached_and_takes_no_input(moto_server) -> None:
    relay = start_relay(relay_settings(moto_server), service=ServiceOptions(ready_ttl=60.0))
    try:
        before = metric(relay.url, "s3mpu_relay_s3_calls_total", operation="ListBuckets")
        for _ in range(5):
            assert get(relay.url, "/readyz")[0] == 200
        assert metric(relay.url, "s3mpu_relay_s3_calls_total", operation="ListBuckets") - before <= 1
        assert get(relay.url, "/readyz", method="POST", body=b"{}")[0] == 405
        assert get(relay.url, "/metrics", method="POST", body=b"{}")[0] == 405
    finally:
        relay.stop()


# -- /metrics and the audit trail ----------------------------------------------------------------
def test_metrics_and_audit_follow_a_real_upload(rclone_server, relay_for, relay_logs) -> None:
    relay = relay_for(rclone_server)
    bucket = rclone_server.bucket()
    data = b"m" * 2000
    key = "in/private-name-of-a-file.bin"
    m = mint_for(rclone_server, bucket, key, relay.url, size=len(data))
    parts = put_parts(m, data)
    done = metric(relay.url, "s3mpu_relay_uploads_completed_total")
    size = metric(relay.url, "s3mpu_relay_completed_bytes_total")
    refusals = metric(relay.url, "s3mpu_relay_refusals_total", reason="token")
    assert post(relay.url, "/v1/complete", {"token": m.relay.token, "parts": parts})[0] == 200
    assert post(relay.url, "/v1/complete", {"token": m.relay.token})[0] == 200  # a retry counts no second upload
    assert post(relay.url, "/v1/status", {"token": m.relay.token[:-4] + "AAAA"})[0] == 401
    assert metric(relay.url, "s3mpu_relay_uploads_completed_total") == done + 1
    assert metric(relay.url, "s3mpu_relay_completed_bytes_total") == size + len(data)
    assert metric(relay.url, "s3mpu_relay_refusals_total", reason="token") == refusals + 1
    assert metric(relay.url, "s3mpu_relay_requests_total", endpoint="/v1/complete", status="200") >= 2
    assert metric(relay.url, "s3mpu_relay_s3_calls_total", operation="CompleteMultipartUpload", outcome="ok") >= 1
    assert metric(relay.url, "s3mpu_relay_request_duration_seconds_count", endpoint="/v1/complete") >= 2
    text = get(relay.url, "/metrics")[1].decode()
    for private in (bucket, key, m.upload_id, m.relay.token, RELAY_SECRET, SECRET_KEY, "127.0.0.1"):
        assert private not in text
    audit = [json.loads(r.getMessage()) for r in relay_logs.records if r.name == "s3mpu.relay.audit"]
    completed = [a for a in audit if a["audit"] == "completed"]
    assert completed[0]["upload_id"] == m.upload_id and completed[0]["key"] == key and completed[0]["bucket"] == bucket
    assert completed[0]["size"] == len(data) and completed[0]["etag"] and completed[0]["who"] == "manifest"
    refused = [a for a in audit if a["audit"] == "refused"]
    assert refused[-1]["reason"] == "token" and refused[-1]["status"] == 401 and refused[-1]["endpoint"] == "/v1/status"
    for line in (r.getMessage() for r in relay_logs.records if r.name == "s3mpu.relay.audit"):
        assert "X-Amz-Signature" not in line and "v1." not in line and RELAY_SECRET not in line


def test_unknown_paths_do_not_grow_metric_labels(moto_server, relay_for) -> None:
    relay = relay_for(moto_server)
    for i in range(5):
        assert get(relay.url, f"/no/such/thing/{i}?k=v")[0] == 404
    text = get(relay.url, "/metrics")[1].decode()
    assert "/no/such" not in text and 'endpoint="unmatched"' in text


# -- the live tokens file ------------------------------------------------------------------------
def test_removed_token_is_refused_within_two_seconds(rclone_server, tmp_path) -> None:
    bucket = rclone_server.bucket()
    path = tokens_file(tmp_path / "tokens.json", bucket, "alice", "bob")
    relay = live_relay(rclone_server, path, bucket)
    body = {"bucket": bucket, "key": "in/a", "size": 10}
    try:
        assert post(relay.url, "/v1/mint", body, {"Authorization": f"Bearer {API_TOKENS[1]}"})[0] == 201
        tokens_file(path, bucket, "alice")
        removed = time.monotonic()
        while post(relay.url, "/v1/mint", body, {"Authorization": f"Bearer {API_TOKENS[1]}"})[0] != 401:
            assert time.monotonic() - removed < 2.0, "bob's token still works 2 s after its removal"
            time.sleep(0.1)
        assert post(relay.url, "/v1/mint", body, {"Authorization": f"Bearer {API_TOKENS[0]}"})[0] == 201
    finally:
        relay.stop()


@pytest.mark.parametrize("garbage", [b"", b'{"tokens": [{"name": "alice", "tok', b"\x00\xff garbage",
                                     b'{"tokens": [{"name": "x"}]}'])
def test_unusable_tokens_file_keeps_the_tokens_in_force(rclone_server, tmp_path, garbage, relay_logs) -> None:
    bucket = rclone_server.bucket()
    path = tokens_file(tmp_path / "tokens.json", bucket, "alice")
    relay = live_relay(rclone_server, path, bucket, tokens_interval=0.0)
    body = {"bucket": bucket, "key": "in/a", "size": 10}
    auth = {"Authorization": f"Bearer {API_TOKENS[0]}"}
    try:
        path.write_bytes(garbage)  # in place, as a half-finished write leaves it
        assert post(relay.url, "/v1/mint", body, auth)[0] == 201
        status, data, _ = get(relay.url, "/readyz")
        assert status == 200 and json.loads(data)["tokens"]["ok"] is False
        assert metric(relay.url, "s3mpu_relay_tokens_file_ok") == 0
        assert metric(relay.url, "s3mpu_relay_tokens_reload_errors_total") >= 1
        assert any("keeping the 1 token(s) in force" in r.getMessage() for r in relay_logs.records)
        tokens_file(path, bucket, "alice", "bob")  # repaired: in force at once
        assert post(relay.url, "/v1/mint", body, {"Authorization": f"Bearer {API_TOKENS[1]}"})[0] == 201
        assert json.loads(get(relay.url, "/readyz")[1])["tokens"]["ok"] is True
    finally:
        relay.stop()


def test_expired_refusal_is_audited_with_its_upload(moto_server, relay_logs) -> None:
    later = time.time() + 30 * 86400
    with start_relay(relay_settings(moto_server), clock=lambda: later, token_grace=0) as relay:
        m = mint_for(moto_server, moto_server.bucket(), "in/late", relay.url, size=10)
        status, body = post(relay.url, "/v1/status", {"token": m.relay.token})
    assert status == 403 and body["error"] == "expired"
    audit = [json.loads(r.getMessage()) for r in relay_logs.records if r.name == "s3mpu.relay.audit"]
    assert audit[-1]["audit"] == "refused" and audit[-1]["reason"] == "expired"
    assert audit[-1]["upload_id"] == m.upload_id and audit[-1]["who"] == "manifest"


@given(st.integers(400, 499), st.text(max_size=20), st.text(max_size=80))
def test_refusal_reasons_are_a_bounded_label_set(status: int, code: str, message: str) -> None:
    assert refusal_reason(status, code, message) in REASONS
