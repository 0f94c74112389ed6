"""The journal of a bundle: which of its objects are on the server, so a re-run sends only the rest.

Why one append-only file per bundle, and why not an fsync per line: a bundle may hold 100,000
small files, and an fsync each would cost more than sending them. A line is handed to the
kernel with one ``write`` as soon as its object is verified (its ETag is its MD5, or its
multipart upload completed), so a ``kill -9`` loses nothing; the file is fsync'd every few
hundred lines and at the end, so a power cut loses at most those lines, and their objects are
sent again by the next run (a PUT of the same bytes gives the same object). A torn last line is
skipped on load. Multipart objects keep their per-upload part journals too (s3mpu.user.journal).
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from s3mpu.compat import O_BINARY
from s3mpu.user.journal import state_dir

VERSION = 1
FSYNC_EVERY = 256


@dataclass(frozen=True)
class ObjectRecord:
    path: str
    size: int
    etag: str | None


def bundle_journal_path(bundle_id: str, directory: Path | None = None) -> Path:
    return (directory or state_dir()) / "bundles" / f"{bundle_id}.jsonl"


class BundleJournal:
    """The objects of one bundle known to be on the server; thread-safe ``record``."""

    def __init__(self, path: Path, bundle_id: str) -> None:
        self.path = path
        self.bundle_id = bundle_id
        self.done: dict[str, ObjectRecord] = {}
        self._fd: int | None = None
        self._unsynced = 0
        self._lock = threading.Lock()

    @classmethod
    def open(cls, bundle_id: str, directory: Path | None = None) -> BundleJournal:
        j = cls(bundle_journal_path(bundle_id, directory), bundle_id)
        j.done = read(j.path, bundle_id)
        return j

    def _ensure_open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fresh = not self.path.exists() or not self.done
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_TRUNC if fresh else 0) | O_BINARY, 0o600)
            if fresh:
                os.write(self._fd, (json.dumps({"v": VERSION, "bundle": self.bundle_id}) + "\n").encode())
            else:
                os.write(self._fd, b"\n")  # a torn last line (kill -9 mid-write) must not swallow ours
        return self._fd

    def record(self, path: str, size: int, etag: str | None) -> None:
        """Note that the object of ``path`` is on the server (written at once; fsync'd every few hundred)."""
        line = json.dumps({"p": path, "s": size, "e": etag}, separators=(",", ":")) + "\n"
        with self._lock:
            fd = self._ensure_open()
            os.write(fd, line.encode("utf-8", "surrogatepass"))
            self.done[path] = ObjectRecord(path, size, etag)
            self._unsynced += 1
            if self._unsynced >= FSYNC_EVERY:
                os.fsync(fd)
                self._unsynced = 0

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                finally:
                    os.close(self._fd)
                    self._fd = None


def read(path: Path, bundle_id: str) -> dict[str, ObjectRecord]:
    """The recorded objects; a missing file, another bundle's file or unparsable lines give nothing for them."""
    try:
        raw = path.read_bytes()
    except OSError:
        return {}
    lines = raw.split(b"\n")
    try:
        head = json.loads(lines[0])
    except ValueError:
        return {}
    if not isinstance(head, dict) or head.get("v") != VERSION or head.get("bundle") != bundle_id:
        return {}
    out: dict[str, ObjectRecord] = {}
    for line in lines[1:]:
        if not line:
            continue
        try:
            obj = json.loads(line)
            rec = ObjectRecord(str(obj["p"]), int(obj["s"]), obj.get("e"))
        except (ValueError, KeyError, TypeError):
            continue
        out[rec.path] = rec
    return out


__all__ = ["BundleJournal", "ObjectRecord", "bundle_journal_path", "read"]
