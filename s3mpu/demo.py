"""``s3mpu demo``: the whole flow on an embedded local S3 (moto server) with an in-process relay.

Everything listens on 127.0.0.1 on free ports and uses throwaway credentials, so it works with
no account, no AWS variables and an empty HOME. It is the same code path as real use: a real
HTTP S3 endpoint, a real relay over HTTP, presigned URLs, the user side holding no key.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3mpu.errors import ConfigError
from s3mpu.units import MiB

DEMO_KEY = "demoaccesskey"
DEMO_SECRET = "demosecretkey"
DEMO_BUCKET = "s3mpu-demo"


@dataclass
class DemoResult:
    """What the demo did, for the summary line and ``--json``."""

    uri: str
    size: int
    parts: int
    etag: str
    seconds: float
    mib_per_s: float
    sha256: str
    verified: bool
    endpoint: str
    relay: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_random(path: Path, size: int) -> str:
    """A file of ``size`` random-looking bytes; returns its SHA-256 (cheap: 1 MiB block varied per block)."""
    h = hashlib.sha256()
    block = os.urandom(min(size, MiB)) if size else b""
    with path.open("wb") as fh:
        left, i = size, 0
        while left > 0:
            chunk = (i.to_bytes(8, "little") + block[8:])[: min(left, len(block))]
            fh.write(chunk)
            h.update(chunk)
            left -= len(chunk)
            i += 1
    return h.hexdigest()


def run_demo(size: int = 64 * MiB, part_size: int | None = None, jobs: int | None = None,
             workdir: str | None = None, progress: Any = None,
             say: Callable[[str], None] = lambda _s: None) -> DemoResult:
    """Start moto + relay, mint, upload with no credentials, complete through the relay, verify."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise ConfigError("the demo needs the embedded S3 server (moto)",
                          "Install it with: pip install 's3mpu[demo]'") from None
    from s3mpu.config import Settings, s3_client
    from s3mpu.admin.mint import MintRequest, mint
    from s3mpu.relay.server import start_relay
    from s3mpu.user.upload import upload

    # moto's werkzeug logs every request line, presigned signatures included: keep it quiet.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    s3server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3server.start()
    relay = None
    try:
        endpoint = f"http://127.0.0.1:{port}"
        secret = os.urandom(16).hex()
        admin = Settings(endpoint_url=endpoint, region="us-east-1", access_key=DEMO_KEY, secret_key=DEMO_SECRET,
                         addressing="path", relay_secrets=(secret,))
        client = s3_client(admin)
        client.create_bucket(Bucket=DEMO_BUCKET)
        relay = start_relay(admin)
        say(f"local S3 at {endpoint}, relay at {relay.url}")
        with tempfile.TemporaryDirectory(prefix="s3mpu-demo-", dir=workdir) as tmp:
            path = Path(tmp) / "bigfile.bin"
            digest = _write_random(path, size)
            say(f"admin: mint s3://{DEMO_BUCKET}/demo/bigfile.bin for {path.name} ({size} bytes)")
            manifest = mint(client, MintRequest(bucket=DEMO_BUCKET, key="demo/bigfile.bin", size=size,
                                                part_size=part_size, relay_url=relay.url),
                            endpoint=endpoint, region="us-east-1", relay_secret=secret)
            say(f"user: put manifest ({len(manifest.parts)} parts) with no credentials")
            started = time.monotonic()
            result = upload(manifest, path, jobs=jobs, progress=progress)
            seconds = time.monotonic() - started
            say("verify: download the object and compare SHA-256")
            body = client.get_object(Bucket=DEMO_BUCKET, Key=manifest.key)["Body"]
            h = hashlib.sha256()
            for chunk in iter(lambda: body.read(MiB), b""):
                h.update(chunk)
            return DemoResult(uri=manifest.uri, size=size, parts=len(manifest.parts), etag=result.etag or "",
                              seconds=round(seconds, 3), mib_per_s=round(size / MiB / max(seconds, 1e-6), 1),
                              sha256=digest, verified=h.hexdigest() == digest, endpoint=endpoint, relay=relay.url)
    finally:
        if relay is not None:
            relay.stop()
        s3server.stop()
