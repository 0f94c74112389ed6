"""The relay's limits and input handling over real sockets (waitress) on real S3 servers.

Issue 10 findings 6, 7 and 8: slow clients, oversized bodies, malformed input, Content-Type,
OPTIONS and waitress-level errors, log injection, Host header, 502 wording, dot segments, and
the relay's own S3 timeouts.
"""
from __future__ import annotations

import base64
import json
import socket
import threading
import time

import urllib3

from faultproxy import FaultProxy
from relay_fixtures import API_TOKENS, mint_for, relay_settings
from s3mpu.relay.config import ApiToken, token_sha256
from s3mpu.relay.server import start_relay
from servers import free_port

HTTP = urllib3.PoolManager(maxsize=20, retries=False)
MiB = 1024 * 1024


def call(url: str, path: str, body=None, *, raw: bytes | None = None, headers=None, method: str = "POST"):
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    r = HTTP.request(method, url + path, body=data, headers=hdrs, timeout=30)
    assert r.headers["Content-Type"].startswith("application/json"), r.data[:200]
    return r.status, json.loads(r.data), r.headers


def api_relay(server, **options):
    bucket = server.bucket()
    api = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "in/", 64 * MiB, 86400),)
    return bucket, start_relay(relay_settings(server), api_tokens=api, **options)


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


# -- finding 7: malformed input is 400, never 500 ----------------------------------------------
def test_malformed_input_is_400(moto_server, relay_for) -> None:
    relay = relay_for(moto_server)
    m = mint_for(moto_server, moto_server.bucket(), "k", relay.url, size=10)
    token = m.relay.token
    mac = token.split(".")[2]
    deep = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).rstrip(b"=").decode()
    status, doc, _ = call(relay.url, "/v1/status", {"token": f"v1.{deep}.{mac}"})  # before the HMAC check
    assert status in (400, 401) and doc["error"] in ("bad_request", "unauthorized")
    status, doc, _ = call(relay.url, "/v1/status", raw=b"[" * 100_000 + b"]" * 100_000)
    assert (status, doc["error"]) == (400, "bad_request")
    status, doc, _ = call(relay.url, "/v1/status", raw=b'{"token": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert (status, doc["error"]) == (400, "bad_request")
    for parts in ([{"number": 1, "size": "abc"}], [{"number": "x"}], [{"number": None}], [{"number": True}],
                  [{"number": 0}], [{"number": 10_001}]):
        status, doc, _ = call(relay.url, "/v1/complete", {"token": token, "parts": parts})
        assert (status, doc["error"]) == (400, "bad_request"), parts
    status, doc, _ = call(relay.url, "/v1/complete", raw=('{"token": "%s", "parts": [{"number": 1e400}]}' % token).encode())
    assert (status, doc["error"]) == (400, "bad_request")
    for expires in (999999999999, "999999999999", "99999999999999999999"):
        status, doc, _ = call(relay.url, "/v1/refresh", {"token": token, "expires": expires})
        assert status == 400 and doc["error"] == "bad_request" and "expires" in doc["message"], (expires, doc)
    assert moto_server.client().list_parts(Bucket=m.bucket, Key="k", UploadId=m.upload_id)  # untouched


def test_mint_expires_out_of_range_is_400(moto_server) -> None:
    bucket, relay = api_relay(moto_server)
    with relay:
        status, doc, _ = call(relay.url, "/v1/mint", {"bucket": bucket, "key": "in/x", "size": 10,
                                                      "expires": 999999999999},
                              headers={"Authorization": f"Bearer {API_TOKENS[0]}"})
    assert (status, doc["error"]) == (400, "bad_request")


# -- finding 8: Content-Type, OPTIONS, waitress errors, Host header, 502, dot segments ---------
def test_json_endpoints_require_application_json(moto_server, relay_for) -> None:
    relay = relay_for(moto_server)
    m = mint_for(moto_server, moto_server.bucket(), "ct", relay.url, size=10)
    body = json.dumps({"token": m.relay.token})
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        r = HTTP.request("POST", relay.url + "/v1/abort", body=body, headers={"Content-Type": ctype} if ctype else {})
        assert r.status == 415 and json.loads(r.data)["error"] == "unsupported_media_type", ctype
    assert moto_server.client().list_parts(Bucket=m.bucket, Key="ct", UploadId=m.upload_id)  # not aborted
    status, doc, _ = call(relay.url, "/v1/status", {"token": m.relay.token},
                          headers={"Content-Type": "application/json; charset=utf-8"})
    assert status == 200 and doc["upload_exists"] is True


def test_options_and_waitress_errors_are_json(moto_server, relay_for) -> None:
    relay = relay_for(moto_server)
    r = HTTP.request("OPTIONS", relay.url + "/v1/complete",
                     headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert r.status == 200 and json.loads(r.data) == {"allow": ["POST"]}
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    r = HTTP.request("OPTIONS", relay.url + "/nope")
    assert r.status == 404 and json.loads(r.data)["error"] == "not_found"
    port = relay.port
    reply = raw_exchange(port, b"GARBAGE\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and head.split(b" ")[1] == b"400" and b"application/json" in head
    assert json.loads(body)["error"] == "bad_request"
    reply = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] in (b"400", b"431") and b"application/json" in head, head[:100]
    assert json.loads(body)["error"] in ("bad_request", "request_header_fields_too_large")


def test_relay_url_never_from_host_header(moto_server) -> None:
    bucket, relay = api_relay(moto_server)
    with relay:
        m = mint_for(moto_server, moto_server.bucket(), "h", relay.url, size=10)
        evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
        status, doc, _ = call(relay.url, "/v1/refresh", {"token": m.relay.token}, headers=evil)
        assert status == 200 and doc["relay"]["url"] == relay.url
        status, doc, _ = call(relay.url, "/v1/mint", {"bucket": bucket, "key": "in/h", "size": 10},
                              headers={**evil, "Authorization": f"Bearer {API_TOKENS[0]}"})
        assert status == 201 and doc["relay"]["url"] == relay.url
    with start_relay(relay_settings(moto_server), public_url="https://relay.example") as configured:
        status, doc, _ = call(configured.url, "/v1/refresh", {"token": m.relay.token}, headers=evil)
        assert status == 200 and doc["relay"]["url"] == "https://relay.example"


def test_502_says_s3_is_unreachable_without_details(moto_server, relay_logs) -> None:
    port = free_port()  # nothing listens there
    settings = relay_settings(moto_server, endpoint_url=f"http://127.0.0.1:{port}")
    m = mint_for(moto_server, moto_server.bucket(), "u", "http://relay", size=10)
    with start_relay(settings, check_endpoint=False, s3_attempts=1, s3_connect_timeout=1) as relay:
        status, doc, _ = call(relay.url, "/v1/status", {"token": m.relay.token})
    assert status == 502 and doc["error"] == "upstream_error"
    assert "S3 is unreachable" in doc["message"]
    text = json.dumps(doc)
    assert str(port) not in text and "127.0.0.1" not in text and m.bucket not in text
    assert any(str(port) in line for line in relay_logs.lines("s3mpu.relay"))  # the details are in the log


def test_dot_segment_keys_refused_by_policy(rclone_server) -> None:
    bucket, relay = api_relay(rclone_server)
    auth = {"Authorization": f"Bearer {API_TOKENS[0]}"}
    with relay:
        for key in ("in/../x", "in/./x", "in//x", "in/a/..", "in/."):
            status, doc, _ = call(relay.url, "/v1/mint", {"bucket": bucket, "key": key, "size": 10}, headers=auth)
            assert (status, doc["error"]) == (403, "forbidden"), (key, doc)
        status, _, _ = call(relay.url, "/v1/mint", {"bucket": bucket, "key": "in/a.b/..c", "size": 10}, headers=auth)
        assert status == 201
    uploads = rclone_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["in/a.b/..c"]


def test_log_filter_escapes_crlf() -> None:
    import logging

    from s3mpu.relay.app import EscapeFilter

    record = logging.LogRecord("s3mpu.relay", logging.INFO, __file__, 1, "minted s3://%s/%s upload=%s",
                               ("b", "in/a\r\n2026-11-30 s3mpu.relay INFO forged", "u"), None)
    assert EscapeFilter().filter(record)
    assert record.getMessage() == "minted s3://b/in/a\\x0d\\x0a2026-11-30 s3mpu.relay INFO forged upload=u"


def test_request_data_is_escaped_in_log_lines(rclone_server, relay_logs) -> None:
    bucket, relay = api_relay(rclone_server)
    key = "in/a\r\n2026-11-30 00:00:00 s3mpu.relay INFO forged\x1b[2K\tline"  # rclone takes such keys
    with relay:
        status, _, _ = call(relay.url, "/v1/mint", {"bucket": bucket, "key": key, "size": 10},
                            headers={"Authorization": f"Bearer {API_TOKENS[0]}"})
    assert status == 201
    messages = [r.getMessage() for r in relay_logs.records if r.name.startswith("s3mpu")]
    minted = [msg for msg in messages if msg.startswith("minted")]
    assert minted and all("a\\x0d\\x0a2026" in msg and "\\x1b[2K\\x09" in msg for msg in minted)
    audit = [msg for msg in messages if msg.startswith('{"audit":"minted"')]  # JSON escapes them its own way
    assert audit and all("a\\r\\n2026" in msg and "\\u001b[2K\\tline" in msg for msg in audit)
    for msg in messages:
        assert not any(c in msg for c in "\r\n\t\x1b"), msg


# -- the relay's own S3 calls: a stalled S3 costs seconds, not minutes ---------------------------
def test_stalled_s3_costs_bounded_time(moto_server) -> None:
    proxy = FaultProxy(moto_server.endpoint, plan=["stall"] * 4, methods=("GET",), stall_seconds=30)
    try:
        settings = relay_settings(moto_server, endpoint_url=proxy.url)
        m = mint_for(moto_server, moto_server.bucket(), "stall", "http://relay", size=10)
        with start_relay(settings, check_endpoint=False, s3_read_timeout=1, s3_attempts=2) as relay:
            t0 = time.monotonic()
            status, doc, _ = call(relay.url, "/v1/status", {"token": m.relay.token})
            took = time.monotonic() - t0
    finally:
        proxy.stop()
    assert status == 502 and "S3 is unreachable" in doc["message"]
    assert took < 8, took  # 2 attempts x 1 s read timeout, plus backoff; the old client took 5 x 60 s
    assert proxy.applied("stall") == 2


# -- finding 6: connection exhaustion ----------------------------------------------------------
def test_slow_clients_cannot_starve_new_requests(moto_server) -> None:
    """More slow clients than the connection limit trickle header lines; a new request is still served."""
    slow_count, limit = 12, 8
    stop = threading.Event()
    socks: list[socket.socket] = []
    with start_relay(relay_settings(moto_server), connection_limit=limit, request_timeout=1,
                     channel_timeout=5) as relay:
        for _ in range(slow_count):
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            s.sendall(b"POST /v1/status HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)

        def trickle() -> None:  # one header line per socket every 0.3 s, for at most 8 s
            deadline = time.monotonic() + 8
            i = 0
            while not stop.is_set() and time.monotonic() < deadline:
                for s in socks:
                    try:
                        s.sendall(f"X-Slow-{i}: 1\r\n".encode())
                    except OSError:
                        pass
                i += 1
                stop.wait(0.3)

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            t0 = time.monotonic()
            r = urllib3.PoolManager(retries=False).request("GET", relay.url + "/healthz", timeout=6)
            took = time.monotonic() - t0
        finally:
            stop.set()
            t.join(10)
            for s in socks:
                s.close()
    assert r.status == 200 and json.loads(r.data) == {"status": "ok"}
    assert took < 5, took


def test_oversized_body_refused_before_it_is_read(moto_server, relay_for) -> None:
    """A 120 MiB declared body gets a JSON 413 at once: waitress does not wait for (or spool) it."""
    relay = relay_for(moto_server)
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as s:
        s.sendall(b"POST /v1/complete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % (120 * MiB) + b"{" * 65536)
        t0 = time.monotonic()
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        took = time.monotonic() - t0
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and took < 3
    assert json.loads(body)["error"] == "payload_too_large"
    status, doc, _ = call(relay.url, "/v1/status", raw=b'{"token": "' + b"x" * (2 * MiB - 13) + b'"}')
    assert status == 401  # exactly --max-body is still accepted (and then refused on its merits)


def test_limits_reach_waitress(moto_server) -> None:
    with start_relay(relay_settings(moto_server), connection_limit=7, channel_timeout=9, max_body=1234) as relay:
        from s3mpu.relay.server import waitress_limits

        limits = waitress_limits(relay.config)
    assert limits["connection_limit"] == 7 and limits["channel_timeout"] == 9
    assert limits["max_request_body_size"] == 1235  # waitress refuses a body of this size or more
