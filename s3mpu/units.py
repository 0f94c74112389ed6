"""Parsing of the human units used on the command line: sizes, durations, expiry times, part ranges.

Kept free of click so the Python API accepts the same spellings (``"64M"``, ``"7d"``).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from s3mpu.errors import UsageError

KiB = 1024
MiB = 1024**2
GiB = 1024**3
TiB = 1024**4

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_MULT = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB, "p": 1024**5}
_DUR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_DUR_MULT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str | int) -> int:
    """Bytes from ``5242880``, ``64M``, ``64MiB``, ``10G``, ``1.5G`` (suffixes are binary, like s3cmd)."""
    if isinstance(text, int):
        if text < 0:
            raise UsageError(f"size must not be negative: {text}")
        return text
    m = _SIZE_RE.match(text)
    if not m or (m.group(3) and m.group(3).lower() == "i"):
        raise UsageError(f"not a size: {text!r}", "Use bytes or a binary suffix, e.g. 5242880, 64M, 64MiB, 10G.")
    value = float(m.group(1)) * _SIZE_MULT[m.group(2).lower()]
    if value != int(value):
        raise UsageError(f"size is not a whole number of bytes: {text!r}")
    return int(value)


def parse_duration(text: str | int | float) -> int:
    """Seconds from ``90s``, ``15m``, ``12h``, ``7d``, ``2w`` or a plain number of seconds."""
    if isinstance(text, int | float):
        return int(text)
    m = _DUR_RE.match(text)
    if not m:
        raise UsageError(f"not a duration: {text!r}", "Use seconds or a suffix s, m, h, d, e.g. 90s, 12h, 7d.")
    return int(float(m.group(1)) * _DUR_MULT[m.group(2).lower()])


def parse_expires(text: str | int, now: datetime | None = None) -> datetime:
    """An absolute UTC expiry from ``7d``/``12h`` (from now), ``+3600``, an epoch, or ISO-8601."""
    now = now or datetime.now(timezone.utc)
    if isinstance(text, int):
        text = str(text)
    s = text.strip()
    if s.startswith("+"):
        return now + timedelta(seconds=parse_duration(s[1:]))
    if re.fullmatch(r"\d{9,}", s):  # an epoch (a plain small number is a duration in seconds)
        return datetime.fromtimestamp(int(s), timezone.utc)
    if _DUR_RE.match(s):
        return now + timedelta(seconds=parse_duration(s))
    try:
        dt = fromisoformat(s)
    except ValueError:
        raise UsageError(
            f"not an expiry: {text!r}", "Use a duration (7d, 12h, +3600), an epoch, or ISO-8601 (2026-12-05T10:00:00Z)."
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def format_size(n: float) -> str:
    """``1.5 GiB``-style rendering for humans."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def format_duration(seconds: float) -> str:
    """``2d 3h``, ``5m 10s``, ``7d``: the two largest units, rounded, zero units dropped.

    Rounded rather than truncated because an expiry minted as ``30d`` is a few seconds
    less than 30 days by the time it is shown, and ``29d 23h`` reads as a different value.
    """
    total = max(0.0, float(seconds))
    units = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))
    for i, (size, _name) in enumerate(units[:-1]):
        step = units[i + 1][0]  # the smaller unit shown beside this one
        rounded = int(round(total / step)) * step
        if rounded >= size:
            return _join(rounded, units[i:i + 2])
    return f"{int(round(total))}s"


def _join(seconds: int, units: tuple[tuple[int, str], ...]) -> str:
    (big, a), (small, b) = units
    hi, lo = divmod(seconds, big)
    lo //= small
    return f"{hi}{a} {lo}{b}" if lo else f"{hi}{a}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 part``, ``2 parts``: counts in messages read as English."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def parse_parts_spec(text: str, max_part: int) -> list[int]:
    """Part numbers from ``1-100,250,300-`` (open ranges run to ``max_part``), sorted, unique."""
    out: set[int] = set()
    for chunk in text.split(","):
        chunk = chunk.strip()
        if not chunk:
            continue
        m = re.fullmatch(r"(\d*)\s*-\s*(\d*)|(\d+)", chunk)
        if not m:
            raise UsageError(f"not a part range: {chunk!r}", "Use e.g. --parts 1-100,250.")
        if m.group(3):
            lo = hi = int(m.group(3))
        else:
            lo = int(m.group(1) or 1)
            hi = int(m.group(2) or max_part)
        if lo < 1 or hi > max_part or lo > hi:
            raise UsageError(f"part range {chunk!r} is outside 1-{max_part}",
                             f"This file fills parts 1-{max_part}: use ranges within them, e.g. --parts 1-{max_part}.")
        out.update(range(lo, hi + 1))
    if not out:
        raise UsageError("--parts names no part")
    return sorted(out)


def fromisoformat(text: str) -> datetime:
    """``datetime.fromisoformat`` with 3.11's forms on 3.10 too (the user side runs there, issue 21).

    3.10 takes only ``+HH:MM`` zones and 3 or 6 fractional digits: ``Z`` and other fractions
    (``10:00:00.5Z``, as some tools write) are normalised first; anything else is left as given.
    """
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)", s)
        if not m:
            raise
        return datetime.fromisoformat(f"{m.group(1)}.{m.group(2)[:6].ljust(6, '0')}{m.group(3)}")


def utc_iso(dt: datetime) -> str:
    """``2026-12-05T10:00:00Z``: the manifest's timestamp form."""
    return dt.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Inverse of :func:`utc_iso` (accepts any ISO-8601 with a zone)."""
    dt = fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt
