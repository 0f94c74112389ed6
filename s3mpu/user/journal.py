"""The resume journal: which parts of which upload are verified done, for which file.

Why an fsync'd append-only log: a ``kill -9`` may land at any instant. Each record is one
JSON line written with a single ``write`` and fsync'd before the part counts as done, so
after a crash the file holds a prefix of the truth plus, at worst, a torn last line, which
loading ignores. A journal recording a different file (device, inode, size, mtime or ctime
changed) is set aside: its parts belong to other bytes. Journals live in the XDG state dir, keyed by upload id.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3mpu.compat import O_BINARY

VERSION = 1


def state_dir(env: dict[str, str] | None = None, platform: str | None = None) -> Path:
    """``$XDG_STATE_HOME/s3mpu`` when set (any platform), else the platform's per-user state directory.

    Linux and other Unixes: ``~/.local/state/s3mpu`` (XDG). Windows: ``%LOCALAPPDATA%\\s3mpu\\state``
    (per user, not roaming: a journal names this machine's file; the profile's ACL keeps it private,
    as mode 0600 does elsewhere). macOS: ``~/Library/Application Support/s3mpu``.
    """
    e = os.environ if env is None else env
    plat = sys.platform if platform is None else platform
    if e.get("XDG_STATE_HOME"):
        return Path(e["XDG_STATE_HOME"]) / "s3mpu"
    if plat == "win32":
        local = e.get("LOCALAPPDATA") or os.path.join(e.get("USERPROFILE") or os.path.expanduser("~"), "AppData", "Local")
        return Path(local) / "s3mpu" / "state"
    home = e.get("HOME") or os.path.expanduser("~")
    if plat == "darwin":
        return Path(home) / "Library" / "Application Support" / "s3mpu"
    return Path(home) / ".local" / "state" / "s3mpu"


def journal_path(upload_id: str, directory: Path | None = None) -> Path:
    """Upload ids hold characters unfit for file names; the name is a hash of the id."""
    digest = hashlib.sha256(upload_id.encode("utf-8")).hexdigest()[:32]
    return (directory or state_dir()) / "journal" / f"{digest}.jsonl"


@dataclass(frozen=True)
class FileIdentity:
    """Enough to notice that the file changed, between runs and during one.

    Why these fields: size and mtime alone are not enough (``os.utime`` or ``touch -r`` puts a
    time stamp back, and a write inside one clock tick keeps it). ``ctime_ns`` is set by the
    kernel on every write, truncation or ``utime`` and cannot be set back by a user; device and
    inode tell a file replaced by another one (an editor's save, ``rsync``) from the same file.
    """

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int = -1
    dev: int = -1
    ino: int = -1

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileIdentity:
        return cls.from_stat(path, os.stat(path))

    @classmethod
    def of_fd(cls, fd: int, path: str | os.PathLike[str]) -> FileIdentity:
        """The identity of an open file (the bytes being read, even if the path now names another file)."""
        return cls.from_stat(path, os.fstat(fd))

    @classmethod
    def from_stat(cls, path: str | os.PathLike[str], st: os.stat_result) -> FileIdentity:
        return cls(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino)

    def changes(self, now: FileIdentity) -> list[str]:
        """What differs from ``now``, in words (empty: the same, unchanged file). The path may differ (moved)."""
        out = []
        if (self.dev, self.ino) != (now.dev, now.ino):
            out.append("it was replaced by another file")
        if self.size != now.size:
            out.append(f"its size went from {self.size} to {now.size} bytes")
        if self.mtime_ns != now.mtime_ns:
            out.append("its modification time changed")
        elif self.ctime_ns != now.ctime_ns and not out:
            out.append("it was written to (its change time moved, although its modification time did not)")
        return out

    def same_file(self, other: FileIdentity) -> bool:
        return not self.changes(other)

    def to_header(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns, "ctime_ns": self.ctime_ns,
                "dev": self.dev, "ino": self.ino}

    @classmethod
    def from_header(cls, h: dict[str, Any]) -> FileIdentity:
        """A journal written before ctime/device/inode were recorded gives -1s: never the same file."""
        def num(k: str) -> int:
            try:
                return int(h.get(k, -1))
            except (TypeError, ValueError):
                return -1
        return cls(str(h.get("path", "")), num("size"), num("mtime_ns"), num("ctime_ns"), num("dev"), num("ino"))


@dataclass(frozen=True)
class PartRecord:
    number: int
    size: int
    md5: str


class Journal:
    """Open (or create) the journal of one upload for one file. Thread-safe ``record``."""

    def __init__(self, path: Path, upload_id: str, bucket: str, key: str, ident: FileIdentity) -> None:
        self.path = path
        self.upload_id = upload_id
        self.bucket = bucket
        self.key = key
        self.ident = ident
        self.parts: dict[int, PartRecord] = {}
        self.existed = False  # a journal for this upload was there before
        self.stale = False  # ... but for another version of the file
        self.changes: list[str] = []  # ... and what changed, in words
        self._lock = threading.Lock()
        self._fd: int | None = None

    @classmethod
    def open(cls, upload_id: str, bucket: str, key: str, ident: FileIdentity,
             directory: Path | None = None) -> Journal:
        j = cls(journal_path(upload_id, directory), upload_id, bucket, key, ident)
        header, parts = read(j.path)
        if header is not None:
            j.existed = True
            old = FileIdentity.from_header(header)
            j.changes = old.changes(ident) if header.get("upload_id") == upload_id else ["another upload's journal"]
            if j.changes:
                j.stale = True
            else:
                j.parts = parts
        return j

    def _header(self) -> dict[str, Any]:
        return {"v": VERSION, "upload_id": self.upload_id, "bucket": self.bucket, "key": self.key,
                **self.ident.to_header()}

    def _ensure_open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists() or self.stale:
                self._rewrite()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | O_BINARY, 0o600)
            if _ends_torn(self.path):  # a crash cut the last line: start ours on a fresh one
                os.write(self._fd, b"\n")
        return self._fd

    def _rewrite(self) -> None:
        """Atomically replace the file with a header and the current records (rename is atomic)."""
        lines = [json.dumps(self._header())] + [_line(p) for p in sorted(self.parts.values(), key=lambda p: p.number)]
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_BINARY, 0o600)
        try:
            os.write(fd, ("\n".join(lines) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self.stale = False

    def record(self, number: int, size: int, md5: str) -> None:
        """Durably note that part ``number`` is on the server and verified (fsync before return)."""
        rec = PartRecord(number, size, md5)
        with self._lock:
            fd = self._ensure_open()
            os.write(fd, (_line(rec) + "\n").encode("utf-8"))
            os.fsync(fd)
            self.parts[number] = rec

    def start(self) -> None:
        """Create the file now (header only) so a crash before the first part still leaves a header."""
        with self._lock:
            self._ensure_open()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def remove(self) -> None:
        """The upload is complete or aborted: nothing is left to resume."""
        self.close()
        self.path.unlink(missing_ok=True)

    def completed(self, etag: str | None, size: int | None) -> None:
        """The upload is complete: drop the journal, keep a note for ``status`` (see :func:`note_completed`)."""
        self.remove()
        note_completed(self.upload_id, etag, size, self.path.parent.parent)


def note_completed(upload_id: str, etag: str | None, size: int | None, directory: Path | None = None) -> None:
    """Remember on this machine that the upload completed (its ETag and size), best effort.

    Why: once complete, S3 forgets the upload id; without a relay to ask, ``status`` could only
    say "gone", the same as for an aborted upload.
    """
    path = journal_path(upload_id, directory).with_suffix(".done")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"upload_id": upload_id, "etag": etag, "size": size}))
        os.replace(tmp, path)
    except OSError:
        pass  # only a convenience for status: never fail a finished upload over it


def completed_note(upload_id: str, directory: Path | None = None) -> dict[str, Any] | None:
    """What :func:`note_completed` wrote for this upload, or None."""
    try:
        doc = json.loads(journal_path(upload_id, directory).with_suffix(".done").read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("upload_id") == upload_id else None


def _line(p: PartRecord) -> str:
    return json.dumps({"n": p.number, "size": p.size, "md5": p.md5}, separators=(",", ":"))


def read(path: Path) -> tuple[dict[str, Any] | None, dict[int, PartRecord]]:
    """``(header, parts)`` from a journal file; a missing or unreadable file gives ``(None, {})``.

    Lines that do not parse (a torn last write) are skipped, never fatal.
    """
    try:
        raw = path.read_bytes()
    except OSError:
        return None, {}
    header: dict[str, Any] | None = None
    parts: dict[int, PartRecord] = {}
    for line in raw.split(b"\n"):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if header is None:
            if obj.get("v") == VERSION and "upload_id" in obj:
                header = obj
                continue
            return None, {}
        try:
            rec = PartRecord(int(obj["n"]), int(obj["size"]), str(obj["md5"]))
        except (KeyError, TypeError, ValueError):
            continue
        parts[rec.number] = rec
    return header, parts


def _ends_torn(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
