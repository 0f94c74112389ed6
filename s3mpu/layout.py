"""Part layout arithmetic: how a size is cut into S3 multipart parts.

S3's rules: at most 10,000 parts, each 5 MiB to 5 GiB except the last, which may be smaller.
Planning is pure arithmetic, separate from any I/O, so it is exhaustively unit-tested.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from s3mpu.errors import UsageError
from s3mpu.units import GiB, MiB, TiB, format_size

MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * TiB
#: Smallest part size chosen automatically; also tuned by the benchmark (issue 5).
DEFAULT_MIN_PART_SIZE = 8 * MiB


@dataclass(frozen=True)
class PartSpan:
    """One part's place in the file: 1-based number, byte offset, byte length."""

    number: int
    offset: int
    size: int


def auto_part_size(size: int, minimum: int = DEFAULT_MIN_PART_SIZE) -> int:
    """The smallest part size (a whole MiB, at least ``minimum``) giving at most 10,000 parts."""
    part = max(minimum, MIN_PART_SIZE)
    needed = -(-size // MAX_PARTS)  # ceil
    if needed > part:
        part = -(-needed // MiB) * MiB
    return part


def check_part_size(size: int, part_size: int) -> None:
    """Refuse layouts S3 would refuse at complete time, before anything is created."""
    if size < 0:
        raise UsageError("size must not be negative")
    if size > MAX_OBJECT_SIZE:
        raise UsageError(f"{format_size(size)} is larger than S3's 5 TiB object limit")
    if part_size <= 0:
        raise UsageError("part size must be positive")
    if part_size > MAX_PART_SIZE:
        raise UsageError(f"part size {format_size(part_size)} exceeds S3's 5 GiB limit")
    count = part_count(size, part_size)
    if count > MAX_PARTS:
        raise UsageError(
            f"{format_size(size)} in parts of {format_size(part_size)} needs {count} parts; S3 allows 10,000",
            f"Use --part-size {format_size(auto_part_size(size)).replace(' ', '')} or leave --part-size out.",
        )
    if part_size < MIN_PART_SIZE and count > 1:
        raise UsageError(
            f"part size {format_size(part_size)} is below S3's 5 MiB minimum",
            "Use --part-size 5M or more (only a single-part upload may be smaller).",
        )


def part_count(size: int, part_size: int) -> int:
    """Number of parts for ``size`` bytes; an empty object still has one (empty) part."""
    return max(1, -(-size // part_size))


def plan_parts(size: int, part_size: int) -> list[PartSpan]:
    """Every part of a ``size``-byte object in ``part_size`` pieces, the last one shorter."""
    check_part_size(size, part_size)
    n = part_count(size, part_size)
    return [PartSpan(i + 1, i * part_size, min(part_size, size - i * part_size)) for i in range(n)]


def used_parts(file_size: int, part_size: int) -> int:
    """How many parts a file of ``file_size`` fills (for ``--max-size`` manifests)."""
    return part_count(file_size, part_size)


def composite_etag(md5_hexes: Sequence[str]) -> str:
    """S3's multipart ETag: MD5 of the concatenated binary part MD5s, ``-N``.

    Why here: the uploader checks the completed object against it and the relay checks a
    repeated complete against it; both must compute it the same way.
    """
    digest = hashlib.md5(b"".join(bytes.fromhex(h) for h in md5_hexes), usedforsecurity=False).hexdigest()
    return f"{digest}-{len(md5_hexes)}"
