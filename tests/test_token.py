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


# -- strict decoding and the grant fields (issue 10) ------------------------------------------
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _spellings(token: str) -> list[str]:
    """Other spellings a lenient base64 decoder maps to the same bytes."""
    prefix, payload, mac = token.split(".")
    low_bits = _ALPHABET[_ALPHABET.index(mac[-1]) ^ 1]  # 43 chars: the last one's 2 low bits are unused
    out = [f"{token}=", f"{token}==", f"{prefix}.{payload}.{mac[:-1]}{low_bits}", f"{prefix}.{payload}.{mac[:3]}!{mac[3:]}",
           f"{prefix}.{payload}.{mac[:3]} {mac[3:]}", f"{prefix}.{payload}=.{mac}", f"{prefix}.{payload}.{mac}\n"]
    if "-" in mac or "_" in mac:
        out.append(f"{prefix}.{payload}.{mac.replace('-', '+').replace('_', '/')}")
    return out


def test_only_the_canonical_spelling_verifies() -> None:
    t = tokens.sign(ID, "k")
    assert tokens.verify(t, ["k"], now=NOW) == ID
    for spelling in _spellings(t):
        with pytest.raises(AccessDeniedError, match="malformed|not valid"):
            tokens.verify(spelling, ["k"], now=NOW)


def test_old_tokens_still_verify_and_read_as_admin_minted() -> None:
    """A token signed the pre-issue-10 way (hmac + base64 by hand) is accepted unchanged."""
    import hashlib
    import hmac
    from dataclasses import asdict

    fields = {k: v for k, v in asdict(ID).items() if k not in ("policy", "policy_max_expires", "md5s_sha256")}
    payload = base64.urlsafe_b64encode(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).rstrip(b"=").decode()
    mac = base64.urlsafe_b64encode(hmac.new(b"k", f"v1.{payload}".encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    old = f"v1.{payload}.{mac}"
    assert old == tokens.sign(ID, "k")  # admin-minted tokens are byte-for-byte what they were
    got = tokens.verify(old, ["k"], now=NOW)
    assert got == ID and got.policy is None and got.md5s_sha256 is None


def test_grant_fields_are_signed() -> None:
    ident = replace(ID, policy="alice", policy_max_expires=3600, md5s_sha256=tokens.md5s_digest(["0" * 32]))
    t = tokens.sign(ident, "k")
    assert tokens.verify(t, ["k"], now=NOW) == ident
    _prefix, payload, sig = t.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for change in ({"policy_max_expires": 7 * 86400}, {"policy": None}, {"md5s_sha256": None}):
        forged = base64.urlsafe_b64encode(json.dumps({**data, **change}).encode()).rstrip(b"=").decode()
        with pytest.raises(AccessDeniedError, match="not valid"):
            tokens.verify(f"v1.{forged}.{sig}", ["k"], now=NOW)


def test_payload_is_parsed_only_after_the_mac_checks_out() -> None:
    deep = base64.urlsafe_b64encode(b"[" * 2500 + b"]" * 2500).rstrip(b"=").decode()
    mac = base64.urlsafe_b64encode(b"\0" * 32).rstrip(b"=").decode()
    with pytest.raises(AccessDeniedError, match="not valid"):
        tokens.verify(f"v1.{deep}.{mac}", ["k"], now=NOW)


@pytest.mark.parametrize("data", [[], {"size": "1"}, {**json.loads(json.dumps({"endpoint": "e", "bucket": "b", "key": "k",
                                  "upload_id": "u", "size": True, "size_is_max": False, "part_size": 1, "parts": 1,
                                  "expires": 1}))}, {"extra": 1}])
def test_signed_but_ill_typed_payloads_are_malformed(data) -> None:
    import hashlib
    import hmac

    payload = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    mac = base64.urlsafe_b64encode(hmac.new(b"k", f"v1.{payload}".encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    with pytest.raises(AccessDeniedError, match="malformed"):
        tokens.verify(f"v1.{payload}.{mac}", ["k"], now=NOW)
