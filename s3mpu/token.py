"""Relay tokens: a stateless HMAC-SHA256 proof that the caller holds a manifest the admin minted.

Format ``v1.<base64url JSON identity>.<base64url HMAC>`` (SPEC §3/§4). The identity names the
upload (endpoint, bucket, key, upload id, size, part size, part count, expiry), so a body of
``{"token": ...}`` alone tells the relay which upload to act on, and altering any of those
fields in a manifest breaks the token. It also carries what the upload was *granted* beyond its
layout, so a refresh cannot widen it: the API token (policy) it was minted under and that
policy's expiry cap, and a digest of the plan's part MD5s.

Signing, the constant-time comparison and secret rotation are itsdangerous's ``Signer`` (with
no key derivation: the MAC is plain HMAC-SHA256 under the relay secret, as before). Decoding is
strict: only the canonical base64url spelling of a MAC or payload is accepted (itsdangerous's
decoder, like the standard library's, ignores stray characters and unused trailing bits, so
several spellings of one MAC would verify), and the JSON is parsed only after the MAC checks
out, so unauthenticated input never reaches the JSON parser.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from itsdangerous import BadData, Signer
from itsdangerous.encoding import base64_decode, base64_encode

from s3mpu.errors import AccessDeniedError

PREFIX = "v1"
#: Longest token accepted (a long key and every optional field stay far below it).
MAX_TOKEN_CHARS = 8192


@dataclass(frozen=True)
class Identity:
    """What a relay token vouches for.

    ``policy``/``policy_max_expires`` name the API token (and its expiry cap in seconds) an
    upload was minted under through ``/v1/mint``; None means admin-minted (only the relay's own
    caps apply). ``md5s_sha256`` is :func:`md5s_digest` of a plan's part MD5s, None when the
    URLs bind no Content-MD5. Absent in tokens minted before these fields existed.
    """

    endpoint: str
    bucket: str
    key: str
    upload_id: str
    size: int
    size_is_max: bool
    part_size: int
    parts: int
    expires: int  # epoch seconds: the URLs' expiry
    policy: str | None = None
    policy_max_expires: int | None = None
    md5s_sha256: str | None = None

    @classmethod
    def from_manifest(cls, m: object, *, policy: str | None = None,
                      policy_max_expires: int | None = None) -> Identity:
        from s3mpu.manifest import Manifest

        assert isinstance(m, Manifest)
        md5s = [p.md5 for p in m.parts]
        digest = md5s_digest(md5s) if all(md5s) and md5s else None
        return cls(m.endpoint, m.bucket, m.key, m.upload_id, m.size, m.size_is_max, m.part_size, len(m.parts),
                   int(m.expires.timestamp()), policy, policy_max_expires, digest)

    def layout(self) -> tuple[Any, ...]:
        """The fields naming the upload and its layout (what a manifest must agree with)."""
        return (self.endpoint, self.bucket, self.key, self.upload_id, self.size, self.size_is_max, self.part_size,
                self.parts)


_TYPES: dict[str, tuple[type, ...]] = {"endpoint": (str,), "bucket": (str,), "key": (str,), "upload_id": (str,),
                                       "size": (int,), "size_is_max": (bool,), "part_size": (int,), "parts": (int,),
                                       "expires": (int,), "policy": (str, type(None)),
                                       "policy_max_expires": (int, type(None)), "md5s_sha256": (str, type(None))}
_OPTIONAL = ("policy", "policy_max_expires", "md5s_sha256")
_REQUIRED = frozenset(f.name for f in fields(Identity)) - set(_OPTIONAL)


def md5s_digest(md5s: Sequence[str | None]) -> str:
    """SHA-256 (hex) of the part MD5 list, in part order: what a token binds of a plan."""
    return hashlib.sha256("\n".join((h or "").lower() for h in md5s).encode("ascii")).hexdigest()


def _b64(data: bytes) -> str:
    return base64_encode(data).decode("ascii")


def _strict_unb64(text: str) -> bytes:
    """Decode base64url, accepting only the one canonical spelling (no padding, no stray bits)."""
    try:
        raw = base64_decode(text)
    except BadData:
        raise ValueError("not base64url") from None
    if _b64(raw) != text:
        raise ValueError("not the canonical base64url spelling")
    return raw


def _signer(secrets: Iterable[str | bytes]) -> Signer | None:
    """itsdangerous's Signer as plain HMAC-SHA256; ``secrets`` newest first (as the relay lists them)."""
    keys = [s.encode("utf-8") if isinstance(s, str) else s for s in secrets if s]
    if not keys:
        return None
    # itsdangerous lists keys oldest to newest and signs with the last one
    return Signer(list(reversed(keys)), sep=".", key_derivation="none", digest_method=hashlib.sha256)


def sign(identity: Identity, secret: str | bytes) -> str:
    """A token for ``identity`` under ``secret``.

    Optional fields that are None are left out, so a token for an admin-minted upload without a
    plan is byte-for-byte what older versions produced (and older relays still read it).
    """
    signer = _signer([secret])
    if signer is None:
        raise ValueError("relay secret is empty")
    data = {k: v for k, v in asdict(identity).items() if v is not None or k not in _OPTIONAL}
    payload = _b64(json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return signer.sign(f"{PREFIX}.{payload}").decode("ascii")


def _split(token: object) -> tuple[str, str]:
    """``(payload, mac)`` of a well-formed token, or AccessDeniedError."""
    malformed = AccessDeniedError("relay token is malformed", "Use the token from the manifest the admin minted.")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise malformed
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise malformed
    try:
        _strict_unb64(parts[1])
        if len(_strict_unb64(parts[2])) != hashlib.sha256().digest_size:
            raise ValueError("wrong MAC length")
    except ValueError:
        raise malformed from None
    return parts[1], parts[2]


def _parse(payload: str) -> Identity:
    bad = AccessDeniedError("relay token is malformed", "Use the token from the manifest the admin minted.")
    try:
        data = json.loads(_strict_unb64(payload))
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(data, dict) or not set(data) <= set(_TYPES) or not _REQUIRED <= set(data):
        raise bad
    for k, v in data.items():
        if not isinstance(v, _TYPES[k]) or (bool not in _TYPES[k] and isinstance(v, bool)):
            raise bad
    return Identity(**data)


def decode_unverified(token: str) -> Identity:
    """The identity inside a token, without checking its MAC (for display and routing only)."""
    payload, _mac = _split(token)
    return _parse(payload)


def verify(token: str, secrets: Iterable[str | bytes], now: float | None = None, grace: int = 0) -> Identity:
    """Check the HMAC under any of ``secrets`` (constant-time) and the expiry plus ``grace`` seconds."""
    if not isinstance(token, str):
        raise AccessDeniedError("relay token is missing")
    payload, mac = _split(token)
    signer = _signer(secrets)
    if signer is None or not signer.verify_signature(f"{PREFIX}.{payload}", mac):
        raise AccessDeniedError("relay token is not valid for this relay",
                                "The manifest was minted with another relay secret; ask the admin to re-mint it.")
    identity = _parse(payload)
    if (now if now is not None else time.time()) > identity.expires + grace:
        raise AccessDeniedError("relay token has expired", "Ask the admin for a refreshed manifest (s3mpu mint --refresh).")
    return identity
