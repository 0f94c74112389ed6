"""Bundles for the user-side tests: a folder of files minted on a test server with admin credentials.

Minted by the admin's own core (``mint s3://B/PREFIX/ --plan`` calls it too), with or without
the plan's MD5s (``hashed``), so these tests exercise ``put BUNDLE DIR`` against real servers.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

from relay_fixtures import RELAY_SECRET
from servers import S3Server

from s3mpu.admin.mint_bundle import BundleFile, BundleRequest, mint_bundle
from s3mpu.bundle import Bundle, dump

MiB = 1024 * 1024


def write_tree(root: Path, sizes: dict[str, int], seed: int = 1) -> Path:
    """Files of the given sizes (deterministic bytes) under ``root``; returns ``root``."""
    for i, (rel, size) in enumerate(sorted(sizes.items())):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        block = hashlib.sha256(f"{seed}-{i}-{rel}".encode()).digest() * 2048  # 64 KiB
        p.write_bytes((block * (size // len(block) + 1))[:size])
    return root


def make_bundle(server: S3Server, bucket: str, root: Path, out: Path, *, prefix: str = "in/",
                part_size: int = 5 * MiB, relay_url: str | None = None, hashed: bool = False,
                expires_in: int = 3600, paths: list[str] | None = None) -> Bundle:
    """Mint a bundle of every file under ``root`` (or ``paths``: FIFOs and links count as 0 bytes) with the
    admin's core (:func:`s3mpu.admin.mint_bundle.mint_bundle`), and write it to ``out``."""
    names = paths or sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    files = []
    for rel in names:
        f = root / rel
        data = f.read_bytes() if f.is_file() else b""
        md5s = [hashlib.md5(data[i:i + part_size]).hexdigest() for i in range(0, max(1, len(data)), part_size)] \
            if hashed else None
        files.append(BundleFile(rel, len(data), part_size, md5s))
    req = BundleRequest(bucket=bucket, prefix=prefix, files=files, relay_url=relay_url,
                        expires=datetime.now(timezone.utc) + timedelta(seconds=expires_in))
    b = mint_bundle(server.client(), req, endpoint=server.endpoint, region=server.region,
                    relay_secret=RELAY_SECRET if relay_url else None)
    dump(b, out)
    return b


def get(server: S3Server, bucket: str, key: str) -> bytes | None:
    try:
        return bytes(server.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:  # botocore ClientError NoSuchKey
        if "NoSuchKey" in str(exc) or "404" in str(exc):
            return None
        raise
