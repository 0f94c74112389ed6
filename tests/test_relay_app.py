"""The relay over a real socket (waitress) on real S3 servers: auth, JSON errors, limits, logs, load."""
from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3

from relay_fixtures import API_TOKENS, RELAY_SECRET, mint_for, put_parts, relay_settings
from s3mpu import token as tokens
from s3mpu.relay.config import ApiToken, RelayConfig, token_sha256
from s3mpu.relay.server import start_relay

pytestmark = pytest.mark.usefixtures("no_secrets_in_logs")
HTTP = urllib3.PoolManager(maxsize=40, retries=False)
MiB = 1024 * 1024


def call(url: str, path: str, body=None, *, method: str = "POST", headers=None, raw: bytes | None = None):
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    r = HTTP.request(method, url + path, body=data, headers=hdrs)
    assert r.headers["Content-Type"].startswith("application/json"), r.data[:200]
    assert r.headers.get("X-Request-Id")
    return r.status, json.loads(r.data)


# -- JSON everywhere -------------------------------------------------------------------------
def test_healthz_and_json_errors(moto_server, relay_for) -> None:
    url = relay_for(moto_server).url
    assert call(url, "/healthz", method="GET") == (200, {"status": "ok"})
    status, doc = call(url, "/nope", method="GET")
    assert status == 404 and doc["error"] == "not_found"
    status, doc = call(url, "/v1/complete", method="GET")
    assert status == 405 and doc["error"] == "method_not_allowed"
    status, doc = call(url, "/v1/status", raw=b"{not json")
    assert status == 400 and doc["error"] == "bad_request"
    status, doc = call(url, "/v1/status", raw=b"[1, 2]")
    assert status == 400
    status, doc = call(url, "/v1/status", raw=b'{"token": "' + b"x" * (3 * MiB) + b'"}')
    assert status == 413 and doc["error"] == "payload_too_large"


def test_body_limit_configurable_and_chunked(moto_server) -> None:
    with start_relay(relay_settings(moto_server), max_body=1000) as relay:
        status, doc = call(relay.url, "/v1/status", {"token": "x" * 2000})
        assert status == 413
        r = HTTP.request("POST", relay.url + "/v1/status", body=iter([b'{"token": "', b"y" * 5000, b'"}']),
                         headers={"Content-Type": "application/json"}, chunked=True)
        assert r.status == 413 and json.loads(r.data)["error"] == "payload_too_large"


def test_unexpected_error_is_json_500_without_secrets(moto_server, relay_logs) -> None:
    def broken():
        raise RuntimeError(f"boom with {RELAY_SECRET} inside")

    m = mint_for(moto_server, moto_server.bucket(), "k", "http://relay", size=10)
    with start_relay(relay_settings(moto_server), s3_client_factory=broken, check_endpoint=False) as relay:
        status, doc = call(relay.url, "/v1/status", {"token": m.relay.token})
    assert status == 500 and doc["error"] == "internal_error" and doc["request_id"] in doc["hint"]
    assert RELAY_SECRET not in json.dumps(doc)
    assert any("RuntimeError" in line for line in relay_logs.lines("s3mpu.relay"))


# -- manifest tokens -------------------------------------------------------------------------
def test_forged_altered_expired_tokens(moto_server, relay_for) -> None:
    relay = relay_for(moto_server)
    bucket = moto_server.bucket()
    good = mint_for(moto_server, bucket, "k", relay.url, size=10)
    assert call(relay.url, "/v1/status", {"token": good.relay.token})[0] == 200
    forged = mint_for(moto_server, bucket, "k", relay.url, size=10, secret="not-the-relay-secret")
    status, doc = call(relay.url, "/v1/status", {"token": forged.relay.token})
    assert status == 401 and doc["error"] == "unauthorized"
    ident = tokens.decode_unverified(good.relay.token)
    other = tokens.sign(tokens.Identity(**{**ident.__dict__, "key": "other"}), "x")
    altered = good.relay.token.split(".")[0] + "." + other.split(".")[1] + "." + good.relay.token.split(".")[2]
    assert call(relay.url, "/v1/status", {"token": altered}) [0] == 401
    assert call(relay.url, "/v1/status", {})[0] == 401
    assert call(relay.url, "/v1/complete", {"token": "garbage"})[0] == 401
    expired = tokens.sign(tokens.Identity(**{**ident.__dict__, "expires": int(time.time()) - 2 * 86400}), RELAY_SECRET)
    status, doc = call(relay.url, "/v1/complete", {"token": expired})
    assert status == 403 and doc["error"] == "expired"
    in_grace = tokens.sign(tokens.Identity(**{**ident.__dict__, "expires": int(time.time()) - 3600}), RELAY_SECRET)
    assert call(relay.url, "/v1/status", {"token": in_grace})[0] == 200  # default grace: one day
    elsewhere = tokens.sign(tokens.Identity(**{**ident.__dict__, "endpoint": "http://10.0.0.1:9"}), RELAY_SECRET)
    status, doc = call(relay.url, "/v1/status", {"token": elsewhere})
    assert status == 403 and "endpoint" in doc["message"]


def test_grace_and_clock_injected(moto_server) -> None:
    m = mint_for(moto_server, moto_server.bucket(), "k", "http://r", size=10)
    later = m.expires.timestamp() + 100
    with start_relay(relay_settings(moto_server), clock=lambda: later, token_grace=50) as relay:
        assert call(relay.url, "/v1/status", {"token": m.relay.token})[0] == 403
    with start_relay(relay_settings(moto_server), clock=lambda: later, token_grace=200) as relay:
        assert call(relay.url, "/v1/status", {"token": m.relay.token})[0] == 200


def test_secret_rotation(moto_server) -> None:
    bucket = moto_server.bucket()
    old = mint_for(moto_server, bucket, "a", "http://r", size=10, secret="old-secret-0000")
    new = mint_for(moto_server, bucket, "b", "http://r", size=10, secret="new-secret-1111")
    both = relay_settings(moto_server, secrets=("new-secret-1111", "old-secret-0000"))
    with start_relay(both) as relay:
        assert call(relay.url, "/v1/status", {"token": old.relay.token})[0] == 200
        assert call(relay.url, "/v1/status", {"token": new.relay.token})[0] == 200
        status, doc = call(relay.url, "/v1/refresh", {"token": old.relay.token})
        assert status == 200
        assert tokens.verify(doc["relay"]["token"], ["new-secret-1111"])  # re-signed with the current secret
    with start_relay(relay_settings(moto_server, secrets=("new-secret-1111",))) as relay:
        assert call(relay.url, "/v1/status", {"token": old.relay.token})[0] == 401


# -- complete / status / abort / refresh through HTTP --------------------------------------------
def test_verification_errors_and_upload_kept(s3, relay) -> None:
    bucket = s3.bucket()
    data = b"z" * (5 * MiB + 7)
    m = mint_for(s3, bucket, "v", relay.url, size=len(data), part_size=5 * MiB)
    sent = put_parts(m, data, numbers=[1])
    status, doc = call(relay.url, "/v1/complete", {"token": m.relay.token})
    assert status == 409 and doc["error"] == "parts_missing" and "2" in doc["message"]
    sent += put_parts(m, data, numbers=[2])
    wrong = [sent[0], {**sent[1], "etag": "f" * 32}]
    status, doc = call(relay.url, "/v1/complete", {"token": m.relay.token, "parts": wrong})
    assert status == 422 and doc["error"] == "parts_mismatch"
    status, doc = call(relay.url, "/v1/status", {"token": m.relay.token})
    assert status == 200 and doc["upload_exists"] and [p["number"] for p in doc["parts"]] == [1, 2]
    status, doc = call(relay.url, "/v1/complete", {"token": m.relay.token, "parts": sent, "size": len(data)})
    assert status == 200 and doc["size"] == len(data)
    assert call(relay.url, "/v1/complete", {"token": m.relay.token, "parts": sent})[1]["size"] == len(data)
    assert s3.client().get_object(Bucket=bucket, Key="v")["Body"].read() == data


def test_refresh_gives_working_urls_capped(s3, relay) -> None:
    bucket = s3.bucket()
    data = b"r" * 1000
    m = mint_for(s3, bucket, "r", relay.url, size=len(data))
    status, doc = call(relay.url, "/v1/refresh", {"token": m.relay.token, "expires": "30d"})
    assert status == 200
    from s3mpu.manifest import Manifest

    fresh = Manifest.from_dict(doc)
    assert fresh.upload_id == m.upload_id and fresh.seconds_left() <= 7 * 86400 + 5
    assert fresh.relay.url == relay.url
    sent = put_parts(fresh, data)
    assert call(relay.url, "/v1/complete", {"token": fresh.relay.token, "parts": sent})[0] == 200
    assert s3.client().get_object(Bucket=bucket, Key="r")["Body"].read() == data
    status, doc = call(relay.url, "/v1/refresh", {"token": m.relay.token})
    assert status == 404 and doc["error"] == "no_such_upload"


def test_abort_then_status(moto_server, relay_for) -> None:
    relay = relay_for(moto_server)
    m = mint_for(moto_server, moto_server.bucket(), "a", relay.url, size=10)
    assert call(relay.url, "/v1/abort", {"token": m.relay.token}) [1]["aborted"] is True
    assert call(relay.url, "/v1/status", {"token": m.relay.token})[1]["upload_exists"] is False


# -- load and logs -------------------------------------------------------------------------
def test_32_threads_status_no_errors(moto_server, relay_for, relay_logs) -> None:
    relay = relay_for(moto_server)
    m = mint_for(moto_server, moto_server.bucket(), "c", relay.url, size=10)
    put_parts(m, b"0123456789")
    errors: list[object] = []
    counts = [0] * 32
    body = json.dumps({"token": m.relay.token}).encode()

    def worker(i: int) -> None:
        http = urllib3.PoolManager(retries=False)
        for _ in range(15):
            try:
                r = http.request("POST", relay.url + "/v1/status", body=body,
                                 headers={"Content-Type": "application/json"})
                if r.status != 200 or json.loads(r.data)["parts"][0]["size"] != 10:
                    errors.append((r.status, r.data[:100]))
                counts[i] += 1
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and sum(counts) == 32 * 15
    access = [json.loads(line.split(" INFO ", 1)[1]) for line in relay_logs.lines("s3mpu.relay.access")]
    status_lines = [a for a in access if a["path"] == "/v1/status"]
    assert len(status_lines) == 32 * 15  # exactly one access line per request
    assert len({a["rid"] for a in status_lines}) == 32 * 15
    assert all(a["status"] == 200 and a["key"] == "c" for a in status_lines)


def test_request_id_echoed(moto_server, relay_for) -> None:
    r = HTTP.request("GET", relay_for(moto_server).url + "/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    r = HTTP.request("GET", relay_for(moto_server).url + "/healthz", headers={"X-Request-Id": "bad id; " * 20})
    assert r.headers["X-Request-Id"] != "bad id; " * 20


def test_api_tokens_file(tmp_path) -> None:
    from s3mpu.errors import ConfigError
    from s3mpu.relay.config import find_api_token, load_api_tokens

    f = tmp_path / "tokens.json"
    f.write_text(json.dumps({"tokens": [
        {"name": "alice", "token": API_TOKENS[0], "bucket": "b", "prefix": "in/", "max_size": "1G", "max_expires": "1d"},
        {"name": "bob", "sha256": token_sha256(API_TOKENS[1]).hex(), "bucket": "c"}]}))
    loaded = load_api_tokens(f)
    assert loaded[0] == ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), "b", "in/", 1 << 30, 86400)
    assert find_api_token(loaded, API_TOKENS[1]).name == "bob"
    from s3mpu.errors import AccessDeniedError

    with pytest.raises(AccessDeniedError):
        find_api_token(loaded, "nope")
    f.write_text(json.dumps({"tokens": [{"name": "x", "bucket": "b"}]}))
    with pytest.raises(ConfigError, match="exactly one"):
        load_api_tokens(f)
    assert RelayConfig().api_tokens == ()


def test_wsgi_app_from_environment(moto_server, monkeypatch, tmp_path) -> None:
    import importlib

    for k, v in moto_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("S3MPU_RELAY_SECRET", RELAY_SECRET)
    monkeypatch.setenv("S3MPU_RELAY_MAX_BODY", "1K")
    monkeypatch.setenv("S3MPU_RELAY_PUBLIC_URL", "https://relay.example")
    wsgi = importlib.import_module("s3mpu.relay.wsgi")
    monkeypatch.delitem(wsgi.__dict__, "app", raising=False)
    app = wsgi.app  # what "gunicorn s3mpu.relay.wsgi:app" loads
    c = app.test_client()
    assert c.get("/healthz").get_json() == {"status": "ok"}
    m = mint_for(moto_server, moto_server.bucket(), "w", "http://relay", size=10)
    assert c.post("/v1/status", json={"token": m.relay.token}).get_json()["upload_exists"] is True
    assert c.post("/v1/status", data="x" * 2000, content_type="application/json").status_code == 413
    monkeypatch.delenv("S3MPU_RELAY_SECRET")
    from s3mpu.errors import ConfigError

    with pytest.raises(ConfigError, match="secret"):
        wsgi.make_app()


def test_log_check_catches_tokens_and_signatures() -> None:
    """The no-secrets check itself: it must see what it is meant to catch."""
    from relay_fixtures import SENSITIVE

    token = tokens.sign(tokens.Identity("e", "b", "k", "u", 1, False, 1, 1, 1), "k")
    assert any(p.search(f"token {token}") for p in SENSITIVE)
    assert any(p.search("GET /b/k?X-Amz-Signature=abcdef0123&x=1") for p in SENSITIVE)
    assert any(p.search("?AWSAccessKeyId=AKIA&Signature=abc%2Bdef") for p in SENSITIVE)
    assert not any(p.search("?X-Amz-Signature=REDACTED and v1.REDACTED") for p in SENSITIVE)
    from s3mpu.relay.service import scrub

    assert scrub(f"u?X-Amz-Signature=abc&X-Amz-Credential=AK/x {token} s3kr3t", ("s3kr3t",)) == \
        "u?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED v1.REDACTED REDACTED"


def test_graceful_stop_finishes_request_in_flight(moto_server) -> None:
    """stop() refuses new connections but lets a request already being served finish."""
    started = threading.Event()

    def slow_client():
        client = moto_server.client()

        def slow(**_kw) -> None:
            started.set()
            time.sleep(0.5)  # a slow S3 answer while the relay is told to stop

        client.meta.events.register("before-call.s3.ListParts", slow)
        return client

    m = mint_for(moto_server, moto_server.bucket(), "g", "http://relay", size=10)
    relay = start_relay(relay_settings(moto_server), s3_client_factory=slow_client, check_endpoint=False)
    result: dict = {}

    def in_flight() -> None:
        r = urllib3.PoolManager(retries=False).request("POST", relay.url + "/v1/status",
                                                       body=json.dumps({"token": m.relay.token}).encode(),
                                                       headers={"Content-Type": "application/json"})
        result["status"] = r.status

    t = threading.Thread(target=in_flight)
    t.start()
    assert started.wait(10)
    relay.stop()
    t.join(10)
    assert result == {"status": 200}
    with pytest.raises(urllib3.exceptions.HTTPError):
        urllib3.PoolManager(retries=False).request("GET", relay.url + "/healthz", timeout=2)


def test_wsgi_refuses_unsafe_configuration(moto_server, monkeypatch) -> None:
    from s3mpu.errors import ConfigError
    from s3mpu.relay.wsgi import config_from_env

    env = {**moto_server.env(), "S3MPU_RELAY_SECRET": RELAY_SECRET, "S3MPU_RELAY_PUBLIC_URL": "https://relay.example",
           "HOME": "/nonexistent"}
    assert config_from_env(env).public_url == "https://relay.example"
    cases = [({"S3MPU_RELAY_SECRET": "x" * 30}, "weak"),
             ({"S3MPU_RELAY_PUBLIC_URL": ""}, "PUBLIC_URL"),
             ({"S3MPU_RELAY_SEED_BUCKET": "b"}, "overwrite"),
             ({"S3MPU_RELAY_SEED_BUCKET": "b", "S3MPU_RELAY_SEED_OPEN": "1"}, "overwrite"),
             ({"S3MPU_RELAY_S3_ATTEMPTS": "many"}, "not a number")]
    for change, match in cases:
        with pytest.raises(ConfigError, match=match):
            config_from_env({**env, **change})
    open_seed = config_from_env({**env, "S3MPU_RELAY_SEED_BUCKET": "b", "S3MPU_RELAY_SEED_OPEN": "1",
                                 "S3MPU_RELAY_SEED_PREFIX": "drop/", "S3MPU_RELAY_SEED_ACLS": "public-read",
                                 "S3MPU_RELAY_S3_READ_TIMEOUT": "7", "S3MPU_RELAY_SECRET": "x" * 30,
                                 "S3MPU_RELAY_INSECURE_SECRET": "1"})
    assert (open_seed.seed_prefix, open_seed.seed_acls, open_seed.s3_read_timeout) == ("drop/", ("public-read",), 7.0)
    assert open_seed.s3().meta.config.read_timeout == 7.0


def test_secret_strength_estimate() -> None:
    from s3mpu.errors import ConfigError
    from s3mpu.relay.config import check_secrets, secret_bits

    assert secret_bits("0123456789abcdef" * 2) >= 128  # openssl rand -hex 16
    assert secret_bits("q8N3v/Jw2xK+7bYc0pLmZt1s9RfE4uHgAaD6iWoVn5U=") >= 128  # openssl rand -base64 32
    assert secret_bits("x" * 200) == 0 and secret_bits("new-secret-1111") < 128 and secret_bits("a") == 0
    with pytest.raises(ConfigError, match="weak"):
        check_secrets((RELAY_SECRET, "a"))
    assert check_secrets(("a",), insecure=True) == ["relay secret 1 of 1 is weak (about 0 bits, 1 characters)"]
    assert check_secrets((RELAY_SECRET,), env_value=RELAY_SECRET) == []
