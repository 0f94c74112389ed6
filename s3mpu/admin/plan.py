"""Content-bound plans: the user hashes the file first, the admin signs those hashes into the URLs.

A plan (``s3mpu plan FILE``) holds the part layout, the MD5 of every part and the SHA-256 of
the whole file. ``s3mpu mint --plan`` signs each part's ``Content-MD5`` into its presigned URL,
so S3 itself refuses any other bytes, and stores the SHA-256 as object metadata
(``x-amz-meta-s3mpu-sha256``), which lets anyone check the finished object later without
trusting multipart ETags. The plan holds no secret, so it can travel by any channel.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from s3mpu.errors import DataError, NoInputError
from s3mpu.layout import PartSpan, auto_part_size, plan_parts
from s3mpu.manifest import parse_json
from s3mpu.units import utc_iso

FORMAT = "s3mpu.plan/1"
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class PlanError(DataError):
    """A malformed plan (exit 65); ``field`` names the offending JSON path."""

    def __init__(self, message: str, field: str = "", hint: str = "") -> None:
        super().__init__(message, hint or "Make a fresh plan with: s3mpu plan FILE -o PLAN")
        self.field = field


@dataclass(frozen=True)
class PlanPart:
    number: int
    offset: int
    size: int
    md5: str  # hex


@dataclass(frozen=True)
class Plan:
    """A file's part layout and hashes; ``md5s`` is what ``mint`` signs."""

    size: int
    part_size: int
    sha256: str
    parts: tuple[PlanPart, ...]
    file: str | None = None  # base name only, for humans: the plan must not leak local paths
    created_at: str | None = None
    format: str = FORMAT

    @property
    def md5s(self) -> list[str]:
        return [p.md5 for p in self.parts]

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "file": self.file, "size": self.size, "part_size": self.part_size,
                "sha256": self.sha256, "created_at": self.created_at,
                "parts": [{"number": p.number, "offset": p.offset, "size": p.size, "md5": p.md5} for p in self.parts]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        validate(data)
        parts = tuple(PlanPart(p["number"], p["offset"], p["size"], p["md5"]) for p in data["parts"])
        return cls(size=data["size"], part_size=data["part_size"], sha256=data["sha256"], parts=parts,
                   file=data.get("file"), created_at=data.get("created_at"))


ProgressFn = Callable[[int], None]


def make_plan(path: str | os.PathLike[str], part_size: int | None = None, *,
              progress: ProgressFn | None = None, now: datetime | None = None) -> Plan:
    """Hash ``path`` in one sequential pass (per-part MD5 and whole-file SHA-256 together).

    One pass keeps the cost to a single read of the file, streamed in 1 MiB chunks: memory
    stays constant whatever the file size. ``progress(n)`` is called with bytes read.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if p.is_dir():
            raise IsADirectoryError(21, "is a directory")
        fh = p.open("rb")
    except FileNotFoundError:
        raise NoInputError(f"file not found: {path}", "Check the path.") from None
    except OSError as exc:
        raise NoInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    part_size = part_size or auto_part_size(size)
    spans = plan_parts(size, part_size)
    sha = hashlib.sha256()
    parts: list[PlanPart] = []
    # SHA-256 runs in a helper thread while this one does MD5 (hashlib releases the GIL on
    # large buffers): the pass costs max(MD5, SHA-256) instead of their sum.
    with fh, ThreadPoolExecutor(1, thread_name_prefix="s3mpu-sha256") as pool:
        pending = None
        for span in spans:
            md5 = hashlib.md5(usedforsecurity=False)
            left = span.size
            while left > 0:
                chunk = fh.read(min(_CHUNK, left))
                if not chunk:
                    raise DataError(f"{path} shrank while it was being read", "Plan a file that is not being written to.")
                if pending is not None:
                    pending.result()
                pending = pool.submit(sha.update, chunk)
                md5.update(chunk)
                left -= len(chunk)
                if progress:
                    progress(len(chunk))
            parts.append(PlanPart(span.number, span.offset, span.size, md5.hexdigest()))
        if pending is not None:
            pending.result()
        if fh.read(1):
            raise DataError(f"{path} grew while it was being read", "Plan a file that is not being written to.")
    return Plan(size=size, part_size=part_size, sha256=sha.hexdigest(), parts=tuple(parts), file=p.name,
                created_at=utc_iso(now or datetime.now(timezone.utc)))


def validate(data: Any) -> None:
    """Raise :class:`PlanError` naming the first bad field; also checks the layout arithmetic."""
    if not isinstance(data, dict):
        raise PlanError("plan is not a JSON object")
    if data.get("format") != FORMAT:
        raise PlanError(f"not an s3mpu plan (format is {data.get('format')!r}, expected {FORMAT!r})", "format")
    for name in ("size", "part_size"):
        v = data.get(name)
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "size" else 1):
            raise PlanError(f"plan field {name}: {v!r} is not a valid byte count", name)
    if not isinstance(data.get("sha256"), str) or not _HEX64.match(data["sha256"]):
        raise PlanError(f"plan field sha256: {_short(data.get('sha256'))} is not a SHA-256 hex digest", "sha256")
    if data.get("file") is not None and not isinstance(data["file"], str):
        raise PlanError("plan field file: must be a string", "file")
    parts = data.get("parts")
    if not isinstance(parts, list) or not parts:
        raise PlanError("plan field parts: missing or empty", "parts")
    try:
        spans = plan_parts(data["size"], data["part_size"])
    except DataError:
        raise
    except Exception as exc:  # layout errors are UsageErrors; for a file they mean bad data
        raise PlanError(f"plan fields size/part_size: {getattr(exc, 'message', exc)}", "part_size") from None
    if len(parts) != len(spans):
        raise PlanError(f"plan field parts: {len(parts)} parts, but size {data['size']} in parts of "
                        f"{data['part_size']} needs {len(spans)}", "parts")
    for i, (p, span) in enumerate(zip(parts, spans, strict=True)):
        _check_part(i, p, span)


def _check_part(i: int, p: Any, span: PartSpan) -> None:
    where = f"parts[{i}]"
    if not isinstance(p, dict):
        raise PlanError(f"plan field {where}: not an object", where)
    for name in ("number", "offset", "size"):
        if name not in p:
            raise PlanError(f"plan field {where}.{name} is missing", f"{where}.{name}")
    if (p["number"], p["offset"], p["size"]) != (span.number, span.offset, span.size):
        raise PlanError(f"plan field {where}: expected part {span.number} at offset {span.offset} of {span.size} "
                        f"bytes, found part {p['number']!r} at {p['offset']!r} of {p['size']!r}", where)
    md5 = p.get("md5")
    if not isinstance(md5, str) or not _HEX32.match(md5):
        raise PlanError(f"plan field {where}.md5: {_short(md5)} is not an MD5 hex digest", f"{where}.md5")


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def loads(text: str | bytes, source: str = "plan") -> Plan:
    return Plan.from_dict(parse_json(text, source, "plan", PlanError))


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and validate a plan file (``-`` is stdin); missing file 66, malformed plan 65."""
    from s3mpu.manifest import read_document

    return loads(*read_document(path, "plan", "Make one with: s3mpu plan FILE -o PLAN"))


def dump_plan(plan: Plan, path: str | os.PathLike[str]) -> None:
    """Write atomically (``-`` is stdout); 0600 like everything s3mpu writes, though a plan holds no secret."""
    from s3mpu.manifest import write_private

    write_private(path, plan.to_json())


def check_file(plan: Plan, path: str | os.PathLike[str]) -> None:
    """Refuse (65) a file that differs from its plan, naming the first differing part."""
    other = make_plan(path, plan.part_size)
    if other.size != plan.size:
        raise DataError(f"{path} is {other.size} bytes but the plan is for {plan.size}",
                        "Use the file the plan was made from, or make a new plan.")
    for a, b in zip(plan.parts, other.parts, strict=True):
        if a.md5 != b.md5:
            raise DataError(f"{path} differs from the plan in part {a.number} (bytes {a.offset}-{a.offset + a.size - 1})",
                            "Use the file the plan was made from, or make a new plan.")


__all__ = ["FORMAT", "Plan", "PlanPart", "PlanError", "make_plan", "load_plan", "dump_plan", "loads", "check_file"]
