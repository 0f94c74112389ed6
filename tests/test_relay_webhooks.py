"""Signed webhooks (Standard Webhooks) from the relay: signature, retries, bounds, over real HTTP.

The signature is checked two independent ways: our signer against the spec's published test
vector, and every delivery the relay makes against the ``standardwebhooks`` package.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3
from standardwebhooks import Webhook

from relay_fixtures import WEBHOOK_SECRET, WebhookReceiver, mint_for, put_parts, relay_settings
from s3mpu.errors import ConfigError
from s3mpu.relay.events import Event, Events
from s3mpu.relay.options import ServiceOptions
from s3mpu.relay.server import start_relay
from s3mpu.relay.webhooks import WebhookSender, message_id, parse_secret, sign
from servers import free_port

HTTP = urllib3.PoolManager(retries=False)
KEY = parse_secret(WEBHOOK_SECRET)


def test_signature_matches_the_published_vector() -> None:
    # https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md (and its libraries' tests)
    key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    assert sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("secret, why", [("whsec_not*base64!", "not valid base64"), ("whsec_c2hvcnQ=", "too short"),
                                         ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "whsec_"), ("", "whsec_")])
def test_bad_secret_is_refused(secret: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_secret(secret)
    assert why in err.value.message and secret[6:] not in err.value.message or not secret[6:]


def _event(upload_id: str = "u1") -> Event:
    return Event("completed", "manifest", "b", "k", upload_id, 10, "etag")


def _sender(url: str, **options) -> tuple[WebhookSender, list[str]]:
    outcomes: list[str] = []
    options = {"timeout": 0.5, "backoff": 0.05, "max_backoff": 0.2, "workers": 2, **options}
    return WebhookSender((url,), KEY, on_outcome=lambda o, _d: outcomes.append(o) if o else None, **options), outcomes


@pytest.mark.parametrize("failure", [500, 302, "hang"])
def test_failed_delivery_is_retried_with_the_same_id(failure) -> None:
    receiver = WebhookReceiver([failure, 204], hang=1.5)
    sender, outcomes = _sender(receiver.url)
    try:
        t0 = time.monotonic()
        sender.listener(_event())
        assert time.monotonic() - t0 < 1.0  # queued, not sent in the caller's time (the receiver may hang 1.5 s)
        (h1, b1), (h2, b2) = receiver.wait(2)
        assert h1["webhook-id"] == h2["webhook-id"] == message_id("upload.completed", "b", "k", "u1")
        assert b1 == b2 and json.loads(b1)["data"]["upload_id"] == "u1"
        for headers, body in ((h1, b1), (h2, b2)):
            Webhook(WEBHOOK_SECRET).verify(body, headers)  # raises when the signature is wrong
        deadline = time.monotonic() + 5
        while "delivered" not in outcomes and time.monotonic() < deadline:
            time.sleep(0.02)
        expected = {500: "http_error", 302: "redirect", "hang": "timeout"}[failure]
        assert outcomes[0] == expected and "delivered" in outcomes and sender.depth == 0
    finally:
        sender.close(0.5)
        receiver.close()


def test_dead_receiver_is_bounded_and_what_is_left_is_counted_at_close(caplog) -> None:
    url = f"http://127.0.0.1:{free_port()}/nobody"  # refused connections
    sender, outcomes = _sender(url, max_queue=3, max_age=30)
    t0 = time.monotonic()
    for i in range(5):
        sender.listener(_event(f"u{i}"))
    assert time.monotonic() - t0 < 2.0
    assert outcomes.count("dropped") == 2 and sender.depth == 3  # the queue holds 3, the rest are logged
    time.sleep(0.3)
    assert "connection_error" in outcomes
    sender.close(0.5)
    assert outcomes.count("undelivered") == 3 and sender.depth == 0
    lost = [r.getMessage() for r in caplog.records if "undelivered" in r.getMessage()]
    assert len(lost) == 5 and all("nobody" in m and "127.0.0.1" in m for m in lost)


def test_retries_stop_after_max_age() -> None:
    receiver = WebhookReceiver([500])
    sender, outcomes = _sender(receiver.url, max_age=0.3)
    try:
        sender.listener(_event())
        deadline = time.monotonic() + 5
        while "expired" not in outcomes and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "expired" in outcomes and sender.depth == 0 and 2 <= len(receiver.received) <= 12
    finally:
        sender.close(0.5)
        receiver.close()


def test_injected_clock_drives_timestamps_and_schedule() -> None:
    receiver = WebhookReceiver([500, 204])
    now = [1_700_000_000.0]
    lock = threading.Lock()

    def clock() -> float:
        with lock:
            return now[0]

    sender, outcomes = _sender(receiver.url, backoff=3600.0, max_backoff=7200.0, max_age=86400.0, clock=clock,
                               jitter=lambda: 0.5)
    try:
        sender.listener(_event())
        (h1, _b1), = receiver.wait(1)
        assert h1["webhook-timestamp"] == "1700000000"
        time.sleep(0.2)
        assert len(receiver.received) == 1  # the retry is due in an hour of the injected clock
        with lock:
            now[0] += 3601
        (_h1, _), (h2, _) = receiver.wait(2, timeout=5)
        assert h2["webhook-timestamp"] == "1700003601" and h2["webhook-id"] == h1["webhook-id"]
    finally:
        sender.close(0.5)
        receiver.close()


def test_events_listener_failure_never_reaches_the_caller(caplog) -> None:
    seen: list[Event] = []
    events = Events()
    events.subscribe(lambda e: 1 / 0)
    events.subscribe(seen.append)
    events.completed(bucket="b", key="k", upload_id="u", size=1, etag="e")
    assert len(seen) == 1 and any("ZeroDivisionError" in r.getMessage() for r in caplog.records)


def test_relay_sends_signed_webhooks_for_real_uploads(rclone_server, relay_logs) -> None:
    """minted (via /v1/mint), completed once (a retried complete sends none), aborted; a slow receiver delays nothing."""
    receiver = WebhookReceiver([500, 204], hang=2.0)
    service = ServiceOptions(webhooks=(receiver.url,), webhook_secret=KEY, webhook_backoff=0.05,
                             webhook_timeout=1.0)
    relay = start_relay(relay_settings(rclone_server), service=service)
    try:
        bucket = rclone_server.bucket()
        data = b"w" * 1000
        m = mint_for(rclone_server, bucket, "in/hooked.bin", relay.url, size=len(data))
        parts = put_parts(m, data)
        for _ in range(2):  # the client retries its complete: one event, no second webhook
            r = HTTP.request("POST", relay.url + "/v1/complete", body=json.dumps({"token": m.relay.token,
                             "parts": [{"number": p["number"], "etag": p["etag"]} for p in parts]}),
                             headers={"Content-Type": "application/json"})
            assert r.status == 200, r.data
        (h1, b1), (h2, b2) = receiver.wait(2)
        assert h1["webhook-id"] == h2["webhook-id"]
        payload = Webhook(WEBHOOK_SECRET).verify(b2, h2)
        assert payload["type"] == "upload.completed" and payload["data"]["upload_id"] == m.upload_id
        assert payload["data"]["key"] == "in/hooked.bin" and payload["data"]["size"] == len(data)
        time.sleep(0.3)
        assert len(receiver.received) == 2
        audit = [json.loads(r.getMessage()) for r in relay_logs.records if r.name == "s3mpu.relay.audit"]
        done = [a for a in audit if a["audit"] == "completed"]
        assert [a["outcome"] for a in done] == ["ok", "already_completed"]
        assert all(a["upload_id"] == m.upload_id and a["key"] == "in/hooked.bin" for a in done)
    finally:
        relay.stop()
        receiver.close()


def test_receiver_hanging_does_not_delay_answers(moto_server) -> None:
    receiver = WebhookReceiver(["hang"], hang=10.0)
    service = ServiceOptions(webhooks=(receiver.url,), webhook_secret=KEY, webhook_timeout=8.0, webhook_workers=1)
    relay = start_relay(relay_settings(moto_server), service=service)
    try:
        bucket = moto_server.bucket()
        times = []
        for i in range(3):
            m = mint_for(moto_server, bucket, f"k{i}", relay.url, size=10)
            put_parts(m, b"x" * 10)
            t0 = time.monotonic()
            r = HTTP.request("POST", relay.url + "/v1/abort", body=json.dumps({"token": m.relay.token}),
                             headers={"Content-Type": "application/json"})
            times.append(time.monotonic() - t0)
            assert r.status == 200
        assert max(times) < 4.0, times  # the receiver holds the one webhook worker for 8 s per delivery
        receiver.wait(1)
    finally:
        relay.stop(timeout=0.5)
        receiver.close()


def test_delivery_in_flight_at_stop_is_counted_once() -> None:
    receiver = WebhookReceiver(["hang"], hang=1.5)
    sender, outcomes = _sender(receiver.url, timeout=5.0)
    try:
        sender.listener(_event())
        receiver.wait(1)
        sender.close(0.2)  # the receiver has not answered: its outcome will never be known
        assert outcomes == ["undelivered"]
        time.sleep(2.0)  # it answers now; nothing is counted again
        assert outcomes == ["undelivered"]
    finally:
        receiver.close()
