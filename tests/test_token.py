"""Relay token sign/verify: HMAC over the identity, rotation of secrets, expiry with grace."""
from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3mpu import token as tokens
from s3mpu.errors import AccessDeniedError

ID = tokens.Identity("http://127.0.0.1:9000", "media", "videos/raw.mov", "2~abc", 10 * 2**30, False, 64 * 2**20, 160,
                     2_000_000_000)
NOW = 1_900_000_000.0


def test_roundtrip() -> None:
    t = tokens.sign(ID, "s3cret")
    assert t.startswith("v1.") and t.count(".") == 2
    assert tokens.verify(t, ["s3cret"], now=NOW) == ID
    assert tokens.decode_unverified(t) == ID


def test_wrong_secret_refused() -> None:
    with pytest.raises(AccessDeniedError, match="not valid"):
        tokens.verify(tokens.sign(ID, "s3cret"), ["other"], now=NOW)


def test_rotation_old_and_new_accepted() -> None:
    old, new = tokens.sign(ID, "old-secret"), tokens.sign(ID, "new-secret")
    assert tokens.verify(old, ["new-secret", "old-secret"], now=NOW) == ID
    assert tokens.verify(new, ["new-secret", "old-secret"], now=NOW) == ID
    with pytest.raises(AccessDeniedError):  # after the rotation window the old one is dropped
        tokens.verify(old, ["new-secret"], now=NOW)
    with pytest.raises(AccessDeniedError):  # empty secrets never match
        tokens.verify(old, ["", "new-secret"], now=NOW)


def test_expiry_and_grace() -> None:
    t = tokens.sign(ID, "k")
    assert tokens.verify(t, ["k"], now=ID.expires) == ID
    with pytest.raises(AccessDeniedError, match="expired"):
        tokens.verify(t, ["k"], now=ID.expires + 1)
    assert tokens.verify(t, ["k"], now=ID.expires + 3600, grace=3600) == ID
    with pytest.raises(AccessDeniedError, match="expired"):
        tokens.verify(t, ["k"], now=ID.expires + 3601, grace=3600)


@pytest.mark.parametrize("field", ["endpoint", "bucket", "key", "upload_id", "size", "size_is_max", "part_size",
                                   "parts", "expires"])
def test_altered_identity_refused(field: str) -> None:
    t = tokens.sign(ID, "k")
    prefix, payload, sig = t.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    value = data[field]
    data[field] = (not value) if isinstance(value, bool) else (value + 1 if isinstance(value, int) else value + "x")
    forged_payload = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(AccessDeniedError, match="not valid"):
        tokens.verify(f"{prefix}.{forged_payload}.{sig}", ["k"], now=NOW)


@pytest.mark.parametrize("bad", ["", "v1", "v1.a.b", "v2.e30.AAAA", "v1.!!!.???", "x" * 500, "v1..", None, 42])
def test_malformed_refused(bad) -> None:
    with pytest.raises(AccessDeniedError):
        tokens.verify(bad, ["k"], now=NOW)


def test_empty_secret_cannot_sign() -> None:
    with pytest.raises(ValueError):
        tokens.sign(ID, "")


@settings(max_examples=60, deadline=None)
@given(key=st.text(min_size=1, max_size=200), size=st.integers(0, 5 * 2**40), secret=st.text(min_size=1, max_size=64))
def test_property_roundtrip_and_single_flip(key: str, size: int, secret: str) -> None:
    ident = replace(ID, key=key, size=size)
    t = tokens.sign(ident, secret)
    assert tokens.verify(t, [secret], now=NOW) == ident
    flipped = t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1]
    with pytest.raises(AccessDeniedError):
        tokens.verify(flipped, [secret], now=NOW)
