"""What this platform's ``os`` offers, decided once at import, and the portable fallbacks.

Why one module: the user side must run wherever Python 3 does (issue 21): Windows has no
``fcntl``, ``os.pread``/``os.preadv``, ``os.sendfile`` or ``posix_fadvise``, some macOS builds
lack ``preadv``. Each fast call stays the default where it exists (Linux speed is unchanged);
each fallback is chosen here, once, so the hot path tests one module-level flag instead of
catching ``AttributeError`` per chunk. Tests force a fallback by deleting the call from
``os`` (or making ``fcntl`` unimportable) *before* importing s3mpu, exactly as a platform
without it would look.
"""
from __future__ import annotations

import importlib
import io
import os
import threading
from pathlib import PurePath
from typing import Any

try:
    import fcntl as _fcntl
except ImportError:  # Windows, or forced by a test
    _fcntl = None  # type: ignore[assignment]

#: the module when the platform has it (flock, F_SETPIPE_SZ), else None
fcntl: Any = _fcntl
HAVE_PREADV = hasattr(os, "preadv")
HAVE_PREAD = hasattr(os, "pread")
HAVE_SENDFILE = hasattr(os, "sendfile") and hasattr(__import__("select"), "poll")
HAVE_FADVISE = hasattr(os, "posix_fadvise")
#: ``os.fchmod`` exists on Windows from 3.13 but only toggles the read-only flag: privacy there
#: comes from the user's profile directory, so it is skipped like where it is missing.
HAVE_FCHMOD = hasattr(os, "fchmod") and os.name != "nt"
WINDOWS = os.name == "nt"
#: every ``os.open`` of data or state: Windows opens in text mode otherwise (``\n`` becomes ``\r\n``)
O_BINARY: int = getattr(os, "O_BINARY", 0)


def fast_calls() -> dict[str, bool]:
    """Which fast paths this process uses (``--version -v``, benchmarks and tests report it)."""
    return {"fcntl": fcntl is not None, "preadv": HAVE_PREADV, "pread": HAVE_PREAD, "sendfile": HAVE_SENDFILE,
            "posix_fadvise": HAVE_FADVISE, "fchmod": HAVE_FCHMOD}


# -- positional reads ------------------------------------------------------------------------
# Without pread, a descriptor has one file position shared by every thread: seek + read from
# several workers would interleave. Each worker thread gets its own handle on the same file
# (opened by path, registered by :func:`open_data`), so its seek + readinto is private. A
# descriptor opened elsewhere (not registered) falls back to seek + read under a per-descriptor
# lock: correct, only serialised.

_paths: dict[int, tuple[int, str]] = {}  # fd -> (generation, path) for descriptors opened by open_data
_generation = 0
_paths_lock = threading.Lock()
_fd_locks: dict[int, threading.Lock] = {}
_local = threading.local()


def open_data(path: str | os.PathLike[str]) -> int:
    """``os.open`` a file to read in binary mode; remembered so workers can open their own handle on it."""
    global _generation
    fd = os.open(path, os.O_RDONLY | O_BINARY)
    if not HAVE_PREAD:
        with _paths_lock:
            _generation += 1
            _paths[fd] = (_generation, os.fspath(path))
    return fd


def close_data(fd: int) -> None:
    """Close a descriptor from :func:`open_data` (the workers' own handles are dropped on their next use)."""
    if not HAVE_PREAD:
        with _paths_lock:
            _paths.pop(fd, None)
            _fd_locks.pop(fd, None)
    os.close(fd)


def _worker_handle(fd: int) -> io.FileIO | None:
    with _paths_lock:
        entry = _paths.get(fd)
    if entry is None:
        return None
    handles: dict[int, tuple[int, io.FileIO]] = _local.__dict__.setdefault("handles", {})
    held = handles.get(fd)
    if held is not None and held[0] == entry[0]:
        return held[1]
    if held is not None:
        held[1].close()
    fh = io.FileIO(entry[1], "rb")  # kept for this thread's later reads
    handles[fd] = (entry[0], fh)
    return fh


def _pread_fallback(fd: int, view: memoryview, offset: int) -> int:
    fh = _worker_handle(fd)
    if fh is not None:
        fh.seek(offset)
        return fh.readinto(view) or 0
    with _paths_lock:
        lock = _fd_locks.setdefault(fd, threading.Lock())
    with lock:
        os.lseek(fd, offset, os.SEEK_SET)
        data = os.read(fd, len(view))
    view[:len(data)] = data
    return len(data)


def _pread_copy(fd: int, view: memoryview, offset: int) -> int:
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)


def _preadv(fd: int, view: memoryview, offset: int) -> int:
    return os.preadv(fd, [view], offset)


#: ``pread_into(fd, view, offset) -> bytes read``: preadv into the buffer (no copy) where it exists,
#: else pread (one copy), else a per-thread handle's seek + readinto.
pread_into = _preadv if HAVE_PREADV else _pread_copy if HAVE_PREAD else _pread_fallback


def fchmod_private(fd: int) -> None:
    """Mode 0600 where modes mean something (POSIX); on Windows the profile directory's ACL is the guard."""
    if HAVE_FCHMOD:
        os.fchmod(fd, 0o600)


def key_path(rel: PurePath | str) -> str:
    r"""A relative path as the end of an object key: ``/`` between its parts whatever ``os.sep`` is.

    ``PureWindowsPath(r"cam\day1\a.mov")`` and ``PurePosixPath("cam/day1/a.mov")`` both give
    ``cam/day1/a.mov``. An absolute path, a drive or a ``..`` cannot name a key under a prefix: ValueError.
    """
    p = PurePath(rel) if isinstance(rel, str) else rel
    if p.is_absolute() or p.drive or p.root or ".." in p.parts or not p.parts:
        raise ValueError(f"not a relative path inside the folder: {str(rel)!r}")
    return "/".join(p.parts)


def binary_stdin() -> None:
    """Windows: standard input in binary mode, so ``put -`` reads the bytes piped in, not CRLF-translated text."""
    if WINDOWS:
        importlib.import_module("msvcrt").setmode(0, O_BINARY)


def install_break_handler() -> None:
    """Windows' Ctrl-Break (SIGBREAK) stops like Ctrl-C (KeyboardInterrupt) instead of killing the process."""
    import signal

    brk = getattr(signal, "SIGBREAK", None)
    if brk is not None and threading.current_thread() is threading.main_thread():
        signal.signal(brk, signal.default_int_handler)


__all__ = ["fcntl", "HAVE_PREADV", "HAVE_PREAD", "HAVE_SENDFILE", "HAVE_FADVISE", "HAVE_FCHMOD", "WINDOWS",
           "O_BINARY", "fast_calls", "open_data", "close_data", "pread_into", "fchmod_private",
           "key_path", "binary_stdin", "install_break_handler"]
