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
from pathlib import Path
from typing import Any, NamedTuple

from s3mpu.compat import O_BINARY
from s3mpu.user.journal import state_dir

VERSION = 1
FSYNC_EVERY = 256
_LINE = json.JSONEncoder(separators=(",", ":"))  # made once: json.dumps builds an encoder per call for these


class ObjectRecord(NamedTuple):  # a tuple: 100,000 of them are made on every re-run of a large bundle
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
        self._lock = threading.Condition()
        self._writing = 0  # records between taking the descriptor and their write: close() waits for them

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
        line = (_LINE.encode({"p": path, "s": size, "e": etag}) + "\n").encode("utf-8", "surrogatepass")
        with self._lock:
            fd = self._ensure_open()
            self._writing += 1
        try:
            # Outside the lock: a write releases the GIL, and a worker holding the lock while it
            # waited to get the GIL back had every other finishing worker queue on the lock behind
            # it (most of a 2,000-file put's samples, py-spy). O_APPEND: each line is one append.
            os.write(fd, line)
            with self._lock:
                self.done[path] = ObjectRecord(path, size, etag)
                self._unsynced += 1
                sync = self._unsynced >= FSYNC_EVERY
                if sync:
                    self._unsynced = 0
            if sync:
                os.fsync(fd)
        finally:
            with self._lock:
                self._writing -= 1
                if not self._writing:
                    self._lock.notify_all()  # close() waits for the writes in flight

    def close(self) -> None:
        with self._lock:
            while self._writing:
                self._lock.wait()
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
    body = [line for line in lines[1:] if line]
    try:  # one parse for the whole file (a torn or damaged line: line by line below)
        docs = json.loads(b"[" + b",".join(body) + b"]")
    except ValueError:
        docs = []
        for line in body:
            try:
                docs.append(json.loads(line))
            except ValueError:
                continue
    out: dict[str, ObjectRecord] = {}
    for obj in docs:
        try:
            rec = ObjectRecord(str(obj["p"]), int(obj["s"]), obj.get("e"))
        except (KeyError, TypeError, ValueError):
            continue
        out[rec.path] = rec
    return out


def finished_path(digest: str, directory: Path | None = None) -> Path:
    return (directory or state_dir()) / "bundles" / f"finished-{digest[:40]}.json"


def note_finished(digest: str, summary: dict[str, Any], directory: Path | None = None) -> None:
    """Remember that every object of the bundle whose bytes hash to ``digest`` landed (best effort).

    Why: a re-run of a finished 100,000-file bundle would otherwise parse and check the whole
    bundle and read the whole journal (about a second) only to send nothing.
    """
    path = finished_path(digest, directory)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"sha256": digest, **summary}))
        os.replace(tmp, path)
    except OSError:
        pass


def finished_note(digest: str, directory: Path | None = None) -> dict[str, Any] | None:
    try:
        doc = json.loads(finished_path(digest, directory).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("sha256") == digest else None


__all__ = ["BundleJournal", "ObjectRecord", "bundle_journal_path", "read", "note_finished", "finished_note"]
