"""Bundles for the user-side tests: a folder of files minted on a test server with admin credentials.

Built from the single-file mint (a multipart object's manifest is exactly a manifest) and
boto3's presigned ``put_object`` (a single PUT signing its Content-Length, and its Content-MD5
when ``hashed``), so these tests exercise ``put BUNDLE DIR`` against real servers.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from relay_fixtures import mint_for
from servers import S3Server

from s3mpu.admin.presign import b64_md5
from s3mpu.bundle import Bundle, BundleObject, dump
from s3mpu.units import utc_iso

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
    """Mint a bundle of every file under ``root`` (or ``paths``) and write it to ``out``."""
    client = server.client()
    names = paths or sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    objects = []
    for rel in names:
        f = root / rel
        data = f.read_bytes() if f.is_file() else b""
        size = len(data)
        key = prefix + rel
        if size <= part_size:
            md5 = hashlib.md5(data).hexdigest() if hashed else None
            params: dict[str, Any] = {"Bucket": bucket, "Key": key, "ContentLength": size}
            if md5:
                params["ContentMD5"] = b64_md5(md5)
            url = client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)
            objects.append(BundleObject(rel, key, size, None, url=url, md5=md5))
        else:
            md5s = [hashlib.md5(data[i:i + part_size]).hexdigest() for i in range(0, size, part_size)] \
                if hashed else None
            m = mint_for(server, bucket, key, relay_url, size=size, part_size=part_size, md5s=md5s,
                         expires=datetime.now(timezone.utc) + timedelta(seconds=expires_in))
            objects.append(BundleObject(rel, key, size, None, manifest=m))
    now = datetime.now(timezone.utc)
    b = Bundle(secrets.token_hex(16), server.endpoint, server.region, bucket, prefix, utc_iso(now),
               utc_iso(now + timedelta(seconds=expires_in)), tuple(objects), relay_url)
    dump(b, out)
    return b


def get(server: S3Server, bucket: str, key: str) -> bytes | None:
    try:
        return bytes(server.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:  # botocore ClientError NoSuchKey
        if "NoSuchKey" in str(exc) or "404" in str(exc):
            return None
        raise
