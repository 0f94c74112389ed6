"""Unit parsing: sizes, durations, expiry times, part ranges."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from s3mpu.errors import UsageError
from s3mpu.units import (format_duration, format_size, parse_duration, parse_expires, parse_iso, parse_parts_spec,
                         parse_size, utc_iso)

NOW = datetime(2026, 11, 28, 10, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,expected", [
    ("5242880", 5242880), ("64M", 64 << 20), ("64MiB", 64 << 20), ("64mb", 64 << 20), ("10G", 10 << 30),
    ("1.5G", 3 << 29), ("0", 0), ("8k", 8192), ("2T", 2 << 40),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "M", "12Q", "-5", "1.3", "64Mi", "ten"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.mark.parametrize("text,expected", [("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800), ("3600", 3600)])
def test_parse_duration(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


def test_parse_expires_forms() -> None:
    assert parse_expires("7d", NOW) == NOW + timedelta(days=7)
    assert parse_expires("12h", NOW) == NOW + timedelta(hours=12)
    assert parse_expires("+3600", NOW) == NOW + timedelta(seconds=3600)
    assert parse_expires("1796032800", NOW) == datetime.fromtimestamp(1796032800, timezone.utc)
    assert parse_expires("2026-12-05T10:00:00Z", NOW) == datetime(2026, 12, 5, 10, tzinfo=timezone.utc)
    assert parse_expires("2026-12-05T11:00:00+01:00", NOW) == datetime(2026, 12, 5, 10, tzinfo=timezone.utc)
    with pytest.raises(UsageError, match="not an expiry"):
        parse_expires("next tuesday", NOW)


def test_iso_roundtrip() -> None:
    assert utc_iso(NOW) == "2026-11-28T10:00:00Z"
    assert parse_iso(utc_iso(NOW)) == NOW


def test_parts_spec() -> None:
    assert parse_parts_spec("1-3,5", 10) == [1, 2, 3, 5]
    assert parse_parts_spec("8-", 10) == [8, 9, 10]
    assert parse_parts_spec("3,1,3", 10) == [1, 3]
    for bad in ("0", "11", "5-3", "a", ","):
        with pytest.raises(UsageError):
            parse_parts_spec(bad, 10)


def test_formatting() -> None:
    assert format_size(512) == "512 B"
    assert format_size(64 << 20) == "64.0 MiB"
    assert format_duration(90) == "1m 30s"
    assert format_duration(2 * 86400 + 3 * 3600) == "2d 3h"
