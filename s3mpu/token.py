"""Relay tokens: a stateless HMAC-SHA256 proof that the caller holds a manifest the admin minted.

Format ``v1.<base64url JSON identity>.<base64url HMAC>``. The identity names the upload
(endpoint, bucket, key, upload id, size, part size, part count, expiry), so a body of
``{"token": ...}`` alone tells the relay which upload to act on, and altering any of those
fields in a manifest breaks the token. Several secrets may be given to :func:`verify` so a
secret can be rotated without invalidating manifests already handed out.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from s3mpu.errors import AccessDeniedError

PREFIX = "v1"


@dataclass(frozen=True)
class Identity:
    """What a relay token vouches for."""

    endpoint: str
    bucket: str
    key: str
    upload_id: str
    size: int
    size_is_max: bool
    part_size: int
    parts: int
    expires: int  # epoch seconds: the URLs' expiry

    @classmethod
    def from_manifest(cls, m: object) -> Identity:
        from s3mpu.manifest import Manifest

        assert isinstance(m, Manifest)
        return cls(m.endpoint, m.bucket, m.key, m.upload_id, m.size, m.size_is_max, m.part_size, len(m.parts),
                   int(m.expires.timestamp()))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str | bytes, payload: str) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, f"{PREFIX}.{payload}".encode("ascii"), hashlib.sha256).digest()


def sign(identity: Identity, secret: str | bytes) -> str:
    """A token for ``identity`` under ``secret``."""
    if not secret:
        raise ValueError("relay secret is empty")
    payload = _b64(json.dumps(asdict(identity), sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return f"{PREFIX}.{payload}.{_b64(_mac(secret, payload))}"


def decode_unverified(token: str) -> Identity:
    """The identity inside a token, without checking it (for display and routing only)."""
    try:
        prefix, payload, _sig = token.split(".")
        if prefix != PREFIX:
            raise ValueError(prefix)
        return Identity(**json.loads(_unb64(payload)))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise AccessDeniedError("relay token is malformed", "Use the token from the manifest the admin minted.") from exc


def verify(token: str, secrets: Iterable[str | bytes], now: float | None = None, grace: int = 0) -> Identity:
    """Check the HMAC under any of ``secrets`` (constant-time) and the expiry plus ``grace`` seconds."""
    if not isinstance(token, str):
        raise AccessDeniedError("relay token is missing")
    identity = decode_unverified(token)
    _prefix, payload, sig = token.split(".")
    try:
        given = _unb64(sig)
    except ValueError:
        raise AccessDeniedError("relay token is malformed") from None
    ok = False
    for secret in secrets:
        if secret and hmac.compare_digest(_mac(secret, payload), given):
            ok = True  # no early exit: every secret costs the same time
    if not ok:
        raise AccessDeniedError("relay token is not valid for this relay",
                                "The manifest was minted with another relay secret; ask the admin to re-mint it.")
    if (now if now is not None else time.time()) > identity.expires + grace:
        raise AccessDeniedError("relay token has expired", "Ask the admin for a refreshed manifest (s3mpu mint --refresh).")
    return identity
