"""Relay fixtures: an in-process relay (waitress on a real socket) bound to a test S3 server.

``relay_for(server, **options)`` (session-scoped factory) returns a running relay for that
server with the known secret :data:`RELAY_SECRET`; relays are cached per server and options
for the whole session, so tests share them. ``relay`` is the relay for the parametrized ``s3``
server (each test using it runs against moto and rclone).
"""
from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from s3mpu.config import Settings
from s3mpu.relay.server import RelayHandle, start_relay
from servers import S3Server

RELAY_SECRET = "s3mpu-test-relay-secret-0123456789abcdef"
__all__ = ["RELAY_SECRET", "relay_settings", "relay_for", "relay", "mint_for", "put_parts", "relay_logs",
           "no_secrets_in_logs", "WEBHOOK_SECRET", "WebhookReceiver"]


def relay_settings(server: S3Server, secrets: tuple[str, ...] = (RELAY_SECRET,), **changes: Any) -> Settings:
    """Admin settings for ``server`` (credentials, endpoint, path addressing) with the relay secret."""
    fields: dict[str, Any] = {"endpoint_url": server.endpoint, "region": server.region,
                              "access_key": server.access_key, "secret_key": server.secret_key,
                              "addressing": "path", "relay_secrets": secrets}
    fields.update(changes)
    return Settings(**fields)


@pytest.fixture(scope="session")
def relay_for() -> Iterator[Callable[..., RelayHandle]]:
    """Factory: ``relay_for(server, **app_options) -> handle`` (``.url``, ``.config``), cached per session."""
    cache: dict[Any, RelayHandle] = {}

    def get(server: S3Server, **options: Any) -> RelayHandle:
        key = (server.endpoint, repr(sorted(options.items())))
        if key not in cache:
            cache[key] = start_relay(relay_settings(server), **options)
        return cache[key]

    yield get
    for handle in cache.values():
        handle.stop()


@pytest.fixture
def relay(s3: S3Server, relay_for: Callable[..., RelayHandle]) -> RelayHandle:
    """The relay for the current ``s3`` server (moto and rclone)."""
    return relay_for(s3)


def mint_for(server: S3Server, bucket: str, key: str, relay_url: str | None, *, secret: str = RELAY_SECRET,
             **request: Any) -> Any:
    """Mint a manifest on ``server`` with admin credentials (size/max_size/part_size/... in ``request``)."""
    from s3mpu.admin.mint import MintRequest, mint

    client = server.client()
    req = MintRequest(bucket=bucket, key=key, relay_url=relay_url, **request)
    return mint(client, req, endpoint=server.endpoint, region=server.region, relay_secret=secret)


def put_parts(manifest: Any, data: bytes, numbers: list[int] | None = None) -> list[dict[str, Any]]:
    """Upload parts of ``data`` through the manifest's presigned URLs, with no credentials at all.

    A deliberately small user-side uploader (the real one is s3mpu.upload): urllib3 PUT with
    Content-MD5; returns ``[{"number", "etag", "size"}]``. SigV2 signs the Content-MD5 header
    whenever it is sent, so on a SigV2 manifest it is sent only where the URL binds it.
    """
    import base64
    import hashlib

    import urllib3

    http = urllib3.PoolManager()
    out = []
    for part in manifest.parts_for_file(len(data)):
        if numbers is not None and part.number not in numbers:
            continue
        body = data[part.offset: part.offset + part.size]
        md5 = hashlib.md5(body).digest()
        headers = {"Content-Length": str(len(body))}
        if manifest.signature_version != "s3" or part.md5:
            headers["Content-MD5"] = base64.b64encode(md5).decode()
        r = http.request("PUT", part.url, body=body, headers=headers)
        assert r.status == 200, (part.number, r.status, r.data[:300])
        out.append({"number": part.number, "etag": r.headers["ETag"].strip('"'), "size": len(body)})
    return out


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, name: str | None = None) -> list[str]:
        return [self.format(r) + (f" {r.exc_text or ''}" if r.exc_info or r.exc_text else "")
                for r in self.records if name is None or r.name == name]


_WATCHED = ("s3mpu", "waitress", "flask", "werkzeug.serving")
SENSITIVE = [re.compile(r"v1\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"),  # a relay token
             re.compile(r"(?:X-Amz-Signature|Signature|X-Amz-Credential|X-Amz-Security-Token)=(?!REDACTED)[^&\s\"]+",
                        re.IGNORECASE)]


@pytest.fixture
def relay_logs() -> Iterator[_Collect]:
    """Every record of s3mpu's and waitress's loggers (all threads) at DEBUG, while the test runs."""
    handler = _Collect()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    saved = []
    for name in _WATCHED:
        lg = logging.getLogger(name)
        saved.append((lg, lg.level))
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
    yield handler
    for lg, level in saved:
        lg.removeHandler(handler)
        lg.setLevel(level)


@pytest.fixture
def no_secrets_in_logs(relay_logs: _Collect) -> Iterator[_Collect]:
    """Fails the test when a relay token, URL signature or known secret reached any s3mpu/waitress log."""
    yield relay_logs
    from servers import SECRET_KEY

    secrets = [RELAY_SECRET, SECRET_KEY, *API_TOKENS, WEBHOOK_SECRET, WEBHOOK_SECRET[6:]]
    for line in relay_logs.lines():
        for pattern in SENSITIVE:
            assert not pattern.search(line), f"sensitive value in a log line: {line[:300]}"
        for secret in secrets:
            assert secret not in line, f"a secret in a log line: {line[:300]}"


#: API tokens used by tests (checked against the logs too).
API_TOKENS = ["api-token-alice-0123456789", "api-token-bob-9876543210"]


#: a Standard Webhooks secret for tests (32 random bytes, base64)
WEBHOOK_SECRET = "whsec_" + base64.b64encode(bytes(range(7, 39))).decode()


class WebhookReceiver:
    """A real HTTP server that records webhook POSTs and answers from a script.

    ``script`` items, used in turn (the last one repeats): an HTTP status (int), or ``"hang"``
    (answer 200 only after ``hang`` seconds, i.e. after the sender's timeout).
    """

    def __init__(self, script: list[Any] | None = None, hang: float = 3.0) -> None:
        import http.server
        import threading

        self.script = list(script or [204])
        self.hang = hang
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.arrived:
                    n = len(receiver.received)
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.arrived.notify_all()
                action = receiver.script[min(n, len(receiver.script) - 1)]
                if action == "hang":
                    import time as _time

                    _time.sleep(receiver.hang)
                    action = 200
                self.send_response(int(action))
                if 300 <= int(action) < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        """The first ``count`` deliveries (fails the test when they do not arrive within ``timeout``)."""
        import time as _time

        deadline = _time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count:
                left = deadline - _time.monotonic()
                assert left > 0, f"{len(self.received)} of {count} webhook deliveries arrived"
                self.arrived.wait(left)
            return list(self.received[:count])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
