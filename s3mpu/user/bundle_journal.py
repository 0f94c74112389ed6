"""The journal of a bundle: which of its objects are on the server, so a re-run sends only the rest.

Why one file per bundle, written through a shared memory map, and why not an fsync per line: a
bundle may hold 100,000 small files, and an fsync each would cost more than sending them. A line
is copied into the file's pages (``mmap``) as soon as its object is verified (its ETag is its MD5,
or its multipart upload completed): the pages are the kernel's, so a ``kill -9`` loses nothing,
and no system call is made per line - each one was a GIL handoff among a bundle's 64 workers,
~40 us of a 16 KiB file's ~350 us of client CPU (2,000 files, rclone, loopback). The file is
fsync'd every few hundred lines and at the end, so a power cut loses at most those lines, and
their objects are sent again by the next run (a PUT of the same bytes gives the same object).
Until the end the file is longer than its lines: the map's unused tail is zeros, skipped on load,
as is a torn last line. Where a file cannot be mapped (some network filesystems) and on Windows
(its fsync does not write a map's pages), each line is one ``write`` instead. Multipart objects
keep their per-upload part journals too (s3mpu.user.journal).
"""
from __future__ import annotations

import json
import mmap
import os
import threading
from pathlib import Path
from typing import Any, NamedTuple

from s3mpu.compat import O_BINARY, WINDOWS
from s3mpu.user.journal import state_dir

VERSION = 1
FSYNC_EVERY = 256
MAP_START = 64 * 1024  # the map's first size; it doubles when full
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
        self._map: mmap.mmap | None = None
        self._end = 0  # bytes of lines in the file (what lies beyond, up to the map's size, is zeros)
        self._unsynced = 0
        self._lock = threading.Condition(threading.Lock())
        self._syncing = 0  # fsyncs in flight, outside the lock: close() waits for them

    @classmethod
    def open(cls, bundle_id: str, directory: Path | None = None) -> BundleJournal:
        j = cls(bundle_journal_path(bundle_id, directory), bundle_id)
        j.done, j._end = _load(j.path, bundle_id)
        return j

    def _ensure_open(self) -> int:
        """The file, open and mapped (under the lock); a new one starts with its header line."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fresh = not self.path.exists() or not self.done
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if fresh else 0) | O_BINARY, 0o600)
            if fresh:
                self._end = 0
            self._map = None if WINDOWS else self._mapped(self._fd, max(MAP_START, 2 * self._end))
            if fresh:
                self._append((json.dumps({"v": VERSION, "bundle": self.bundle_id}) + "\n").encode())
            else:
                self._append(b"\n")  # a torn last line (kill -9 mid-write) must not swallow ours
        return self._fd

    @staticmethod
    def _mapped(fd: int, size: int) -> mmap.mmap | None:
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # a map cannot reach past the end of its file
            return mmap.mmap(fd, size)
        except (OSError, ValueError):
            return None

    def _append(self, data: bytes) -> None:
        """Put ``data`` after the last line (under the lock)."""
        end = self._end + len(data)
        m = self._map
        if m is not None and end > len(m):
            try:
                m.resize(max(end, 2 * len(m)))
            except (OSError, ValueError, SystemError):
                m.close()
                self._map = m = None
                os.ftruncate(self._fd, self._end)  # type: ignore[arg-type]
        if m is not None:
            m[self._end:end] = data  # no system call, so no GIL handoff
        else:
            fd = self._fd
            assert fd is not None
            os.lseek(fd, self._end, os.SEEK_SET)
            os.write(fd, data)
        self._end = end

    def record(self, path: str, size: int, etag: str | None) -> None:
        """Note that the object of ``path`` is on the server (in the file at once; fsync'd every few hundred)."""
        line = (_LINE.encode({"p": path, "s": size, "e": etag}) + "\n").encode("utf-8", "surrogatepass")
        with self._lock:
            fd = self._ensure_open()
            self._append(line)
            self.done[path] = ObjectRecord(path, size, etag)
            self._unsynced += 1
            sync = self._unsynced >= FSYNC_EVERY
            if sync:
                self._unsynced = 0
                self._syncing += 1
        if sync:
            try:
                os.fsync(fd)  # outside the lock: it waits for the disk (a map's pages are the file's: Linux, BSDs)
            finally:
                with self._lock:
                    self._syncing -= 1
                    if not self._syncing:
                        self._lock.notify_all()

    def close(self) -> None:
        """Write the lines down and cut the file to them (the map's zeros go)."""
        with self._lock:
            while self._syncing:
                self._lock.wait()
            fd, m = self._fd, self._map
            if fd is None:
                return
            self._fd = self._map = None
            try:
                if m is not None:
                    m.flush()
                    m.close()
                os.ftruncate(fd, self._end)  # the map's zeros, or a killed mapped run's
                os.fsync(fd)
            finally:
                os.close(fd)


def read(path: Path, bundle_id: str) -> dict[str, ObjectRecord]:
    """The recorded objects; a missing file, another bundle's file or unparsable lines give nothing for them."""
    return _load(path, bundle_id)[0]


def _load(path: Path, bundle_id: str) -> tuple[dict[str, ObjectRecord], int]:
    """``read``, and the length of the file's lines (a run killed while it was mapped left zeros after them)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return {}, 0
    raw = raw.rstrip(b"\0")
    lines = raw.split(b"\n")
    try:
        head = json.loads(lines[0])
    except ValueError:
        return {}, 0
    if not isinstance(head, dict) or head.get("v") != VERSION or head.get("bundle") != bundle_id:
        return {}, 0
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
    return out, len(raw)


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
