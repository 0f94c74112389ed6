"""Checks on request input that the relay makes before acting, so malformed input is a 400 (or a
403 by policy), never a 500 deeper down: part lists, expiries, key names.

Kept apart from :mod:`s3mpu.relay.service` (what each endpoint does) so both stay readable.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from s3mpu.errors import AccessDeniedError, UsageError
from s3mpu.units import parse_expires

MAX_PART_NUMBER = 10_000
_SEGMENT_MESSAGE = "keys with an empty, '.' or '..' path segment are refused by the relay's policy"


def refuse_dot_segments(key: str) -> None:
    """403 for ``a/../b``, ``./x``, ``a//b``: S3 servers disagree on them (rclone refuses, others
    normalise or keep them), so a key that passed a prefix check could land elsewhere."""
    if any(seg in ("", ".", "..") for seg in key.split("/")[:-1]) or key.split("/")[-1] in (".", ".."):
        raise AccessDeniedError(f"{_SEGMENT_MESSAGE}: {key[:200]!r}", "Name the object without such segments.")


def client_parts(parts: Any) -> list[dict[str, Any]] | None:
    """``parts`` as sent to /v1/complete, checked field by field (400, never a 500 later)."""
    if parts is None:
        return None
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise UsageError('"parts" must be a list of {"number", "etag"} objects')
    if len(parts) > MAX_PART_NUMBER:
        raise UsageError(f'"parts" lists more than {MAX_PART_NUMBER} parts')
    for i, p in enumerate(parts):
        n = p.get("number")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PART_NUMBER:
            raise UsageError(f'parts[{i}].number must be a whole number from 1 to {MAX_PART_NUMBER}')
        if p.get("etag") is not None and (not isinstance(p["etag"], str) or len(p["etag"]) > 200):
            raise UsageError(f"parts[{i}].etag must be a string (the part's ETag)")
        if p.get("size") is not None and (isinstance(p["size"], bool) or not isinstance(p["size"], int)
                                          or p["size"] < 0):
            raise UsageError(f"parts[{i}].size must be a non-negative whole number of bytes")
    return parts


def is_utf8(text: str) -> bool:
    """False for strings JSON can carry but UTF-8 cannot encode (lone surrogates)."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def expires(value: Any, now: datetime) -> datetime | None:
    """An ``expires`` field (duration, ``+seconds``, epoch, ISO-8601) as a datetime; 400 when out of range."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or len(str(value)) > 64:
        raise UsageError('"expires" must be a duration ("12h"), "+3600", an epoch or ISO-8601')
    try:
        return parse_expires(value if isinstance(value, str) else f"+{value}", now)
    except (OverflowError, ValueError, OSError):  # e.g. an epoch past the year 9999
        raise UsageError(f'"expires" {str(value)[:64]!r} is out of range',
                         'Use a duration ("12h", at most 7 days) or a near date.') from None
