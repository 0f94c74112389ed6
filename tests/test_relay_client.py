"""RelayClient against a real relay on real S3 servers (moto and rclone), and its error mapping."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from relay_fixtures import mint_for, put_parts
from s3mpu.errors import AccessDeniedError, DataError, NoInputError, PartialError, TempFailError, UsageError
from s3mpu.user.relayclient import RelayClient
from servers import free_port


def test_full_cycle_status_complete_twice(s3, relay) -> None:
    bucket = s3.bucket()
    data = bytes(range(256)) * (5 * 4096) + b"tail"  # 5 MiB + 4 bytes: two parts
    m = mint_for(s3, bucket, "obj.bin", relay.url, size=len(data), part_size=5 * 1024 * 1024)
    client = RelayClient(relay.url)
    assert client.health() is True
    st = client.status(m.relay.token)
    assert st["upload_exists"] is True and st["parts"] == []
    sent = put_parts(m, data)
    st = client.status(m.relay.token)
    assert [(p["number"], p["size"], p["etag"]) for p in st["parts"]] == [(p["number"], p["size"], p["etag"]) for p in sent]
    first = client.complete(m.relay.token, parts=sent, size=len(data))
    assert first["size"] == len(data) and first["key"] == "obj.bin" and first["bucket"] == bucket
    assert first["parts"] == 2 and first["etag"].endswith("-2")
    again = client.complete(m.relay.token, parts=sent, size=len(data))  # idempotent
    assert again["size"] == first["size"] and again["key"] == first["key"]
    assert s3.client().get_object(Bucket=bucket, Key="obj.bin")["Body"].read() == data
    done = client.status(m.relay.token)
    assert done["upload_exists"] is False and done["completed"] is True


def test_missing_part_is_partial_then_abort(s3, relay) -> None:
    bucket = s3.bucket()
    data = b"x" * (5 * 1024 * 1024 + 10)
    m = mint_for(s3, bucket, "k", relay.url, size=len(data), part_size=5 * 1024 * 1024)
    put_parts(m, data, numbers=[2])
    client = RelayClient(relay.url)
    with pytest.raises(PartialError) as info:
        client.complete(m.relay.token)
    assert "1" in info.value.message and info.value.exit_code == 2
    assert client.abort(m.relay.token)["aborted"] is True
    assert client.abort(m.relay.token)["aborted"] is True  # an aborted upload stays aborted
    assert client.status(m.relay.token)["completed"] is False
    with pytest.raises(NoInputError):
        client.complete(m.relay.token)


def test_forged_token_is_access_denied(moto_server, relay_for) -> None:
    relay = relay_for(moto_server)
    m = mint_for(moto_server, moto_server.bucket(), "k", relay.url, size=10, secret="another-secret-entirely")
    with pytest.raises(AccessDeniedError) as info:
        RelayClient(relay.url).status(m.relay.token)
    assert info.value.exit_code == 77
    assert m.relay.token not in str(info.value)


def test_unreachable_relay_is_tempfail_after_retries() -> None:
    sleeps: list[float] = []
    client = RelayClient(f"http://127.0.0.1:{free_port()}", retries=3, sleep=sleeps.append, timeout=2)
    with pytest.raises(TempFailError) as info:
        client.status("v1.x.y")
    assert len(sleeps) == 3 and sleeps[0] < sleeps[2]  # exponential backoff
    assert "v1.x.y" not in str(info.value) and info.value.exit_code == 75
    assert client.health() is False


class _Canned(BaseHTTPRequestHandler):
    answers: list[tuple[int, bytes]] = []
    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(self.path)
        status, body = self.answers.pop(0) if self.answers else (200, b'{"ok": true}')
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canned():
    """A tiny real HTTP server answering from a script (to reach the status codes a relay rarely gives)."""
    server = HTTPServer(("127.0.0.1", 0), _Canned)
    _Canned.answers, _Canned.seen = [], []
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Canned
    server.shutdown()
    server.server_close()


def test_5xx_retried_then_success(canned) -> None:
    url, handler = canned
    handler.answers = [(503, b"busy"), (502, b'{"error": "upstream_error", "message": "x"}'), (200, b'{"parts": []}')]
    sleeps: list[float] = []
    assert RelayClient(url, sleep=sleeps.append).status("t") == {"parts": []}
    assert len(sleeps) == 2 and handler.seen == ["/v1/status"] * 3


def test_mint_not_retried_on_5xx(canned) -> None:
    url, handler = canned
    handler.answers = [(500, b'{"error": "internal_error", "message": "boom"}')]
    with pytest.raises(TempFailError):
        RelayClient(url, retries=0).mint("api", {"bucket": "b"})


@pytest.mark.parametrize(("status", "code", "exc"), [
    (401, "unauthorized", AccessDeniedError), (403, "expired", AccessDeniedError), (409, "parts_missing", PartialError),
    (422, "parts_mismatch", DataError), (400, "bad_request", DataError), (413, "payload_too_large", DataError),
    (404, "no_such_upload", NoInputError), (404, "not_found", NoInputError), (502, "upstream_error", TempFailError)])
def test_error_mapping(canned, status, code, exc) -> None:
    url, handler = canned
    handler.answers = [(status, f'{{"error": "{code}", "message": "because"}}'.encode())] * 4
    with pytest.raises(exc) as info:
        RelayClient(url, retries=1, sleep=lambda s: None).complete("secret-token-value")
    assert "because" in info.value.message or code == "not_found"
    assert "secret-token-value" not in str(info.value)


def test_non_json_success_is_tempfail(canned) -> None:
    url, handler = canned
    handler.answers = [(200, b"<html>hello</html>")]
    with pytest.raises(TempFailError, match="not JSON"):
        RelayClient(url).status("t")


def test_bad_url_is_usage_error() -> None:
    with pytest.raises(UsageError):
        RelayClient("relay.example.com")
