"""Where a put's bytes come from: a **source** of parts behind one small interface.

Why: the upload steps (:mod:`s3mpu.user.upload`) and the transfer engine
(:mod:`s3mpu.user.transfer`) should not care whether the parts come from a regular file or
from a pipe. s3transfer's upload input managers (a filename, a seekable stream, a non-seekable
stream) are the model:

- :class:`FileSource` reads a regular file at each part's offset, as often as needed: once to
  check content-bound MD5s before the first byte is sent, once to hash each part, once to stream
  it with ``sendfile``, again on a retry. Nothing is held in memory.
- A stream source (standard input) can read each byte once only, so it buffers each part once
  and keeps it until the part is on the server.

The steps ask the source for facts (its name for messages, its size when known, the parts it
fills) and for the MD5s of parts they must check; the engine gets tasks that say where each
part's bytes are.
"""
from __future__ import annotations

import hashlib
import io
import mmap
import os
import queue
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from s3mpu.compat import binary_stdin, close_data, fcntl, open_data, pread_into
from s3mpu.errors import DataError, NoInputError, UsageError
from s3mpu.manifest import Manifest, Part
from s3mpu.units import format_size, parse_parts_spec
from s3mpu.user.journal import FileIdentity
from s3mpu.user.transfer import CHUNK, Cancelled, PartTask, hash_range


def check_file(m: Manifest, path: str | os.PathLike[str]) -> FileIdentity:
    """The file's identity, after checking it fits the manifest (exit 66 / 65 before any byte moves)."""
    try:
        ident = FileIdentity.of(path)
    except FileNotFoundError:
        raise NoInputError(f"file not found: {path}", "Check the path of the file to upload.") from None
    except OSError as exc:
        raise NoInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if Path(path).is_dir():
        raise NoInputError(f"{path} is a directory, not a file", "Give the path of the one file to upload.")
    if not os.access(path, os.R_OK):
        raise NoInputError(f"cannot read {path}: permission denied")
    if m.size_is_max:
        if ident.size > m.size:
            raise DataError(f"{path} is {ident.size} bytes ({format_size(ident.size)}), more than the manifest's "
                            f"maximum of {m.size} bytes ({format_size(m.size)}); nothing was sent",
                            "Ask the admin for a manifest with a larger --max-size.")
    elif ident.size != m.size:
        raise DataError(f"{path} is {ident.size} bytes but the manifest is for exactly {m.size} bytes; nothing was sent",
                        "Upload the file the manifest was minted for, or ask the admin for one minted with "
                        f"--size {ident.size}.")
    return ident


def file_parts(m: Manifest, size: int, subset: Sequence[int] | str | None) -> tuple[list[Part], list[Part]]:
    """``(all parts the file fills, the ones this run is responsible for)``."""
    every = m.parts_for_file(size)
    if subset is None:
        return every, every
    numbers = parse_parts_spec(subset, len(every)) if isinstance(subset, str) else sorted(set(subset))
    bad = [n for n in numbers if n < 1 or n > len(every)]
    if bad:
        raise UsageError(f"--parts names part {bad[0]}, but this file fills parts 1-{len(every)}")
    wanted = set(numbers)
    return every, [p for p in every if p.number in wanted]


def check_content(fd: int, parts: Sequence[Part | PartTask], file_path: str) -> None:
    """Content-bound manifests (minted from a plan): every part's MD5 must match before the first byte is sent.

    The transfer checks each part again just before sending it, but parts run in parallel: only a
    check of every part still to send guarantees that a differing file sends nothing (exit 65).
    Parts already done (journal, or verified against the server's list) are not read again.
    """
    buf = bytearray(CHUNK)
    for p in parts:
        try:
            md5 = hash_range(fd, p.offset, p.size, buf)
        except Exception as exc:  # LocalReadError: the file shrank or cannot be read
            raise NoInputError(f"cannot read {file_path}: {exc}") from None
        if p.md5 and md5 != p.md5.lower():
            raise DataError(f"{file_path} differs from the file the manifest was planned for: part {p.number} "
                            f"(bytes {p.offset}-{p.offset + p.size - 1}) has MD5 {md5}, the manifest expects {p.md5}; "
                            "nothing was sent",
                            "Upload the exact file that was planned (s3mpu plan), or ask the admin for a new manifest.")


class FileSource:
    """A regular file: every part is read at its offset, as many times as needed (no buffering)."""

    replayable = True  # a re-run can read the same bytes again, so parts can be checked before sending

    def __init__(self, path: str | os.PathLike[str], identity: FileIdentity, fd: int) -> None:
        self.name = str(path)
        self.path = path
        self.identity = identity
        self.fd = fd

    @classmethod
    def open(cls, m: Manifest, path: str | os.PathLike[str]) -> FileSource:
        """Check the file fits the manifest (66/65, before any network), then open it."""
        ident = check_file(m, path)
        try:
            fd = open_data(path)
        except OSError as exc:
            raise NoInputError(f"cannot open {path}: {exc.strerror or exc}") from None
        return cls(path, ident, fd)

    @property
    def size(self) -> int:
        return self.identity.size

    def parts(self, m: Manifest, subset: Sequence[int] | str | None) -> tuple[list[Part], list[Part]]:
        """``(all parts the file fills, the ones this run sends)``; see :func:`file_parts`."""
        return file_parts(m, self.size, subset)

    def md5(self, part: Part, buf: bytearray | None = None, cancel: threading.Event | None = None) -> str:
        """Hex MD5 of one part's bytes, read at its offset."""
        return hash_range(self.fd, part.offset, part.size, buf if buf is not None else bytearray(CHUNK), cancel)

    def check_content(self, parts: Sequence[Part | PartTask]) -> None:
        """Content-bound parts must hold the planned bytes (65 before the first byte is sent)."""
        check_content(self.fd, parts, self.name)

    def md5s_and_whole(self, parts: Sequence[Part]) -> tuple[list[str], str]:
        """Every part's MD5 and the whole file's, in one read (to recognise an already completed object)."""
        whole = hashlib.md5()
        out = []
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        for p in parts:
            h = hashlib.md5()
            pos = 0
            while pos < p.size:
                n = pread_into(self.fd, view[:min(len(buf), p.size - pos)], p.offset + pos)
                if n <= 0:
                    raise DataError(f"the file ended early at byte {p.offset + pos}")
                h.update(view[:n])
                whole.update(view[:n])
                pos += n
            out.append(h.hexdigest())
        return out, whole.hexdigest()

    def close(self) -> None:
        close_data(self.fd)


class Readable(Protocol):
    """What a stream source needs: ``readinto`` (a pipe, ``sys.stdin.buffer``, ``io.BytesIO``...)."""

    def readinto(self, buffer: Any, /) -> int | None: ...


#: the journal's identity for a stream: there is no file to compare, only the part MD5s
STREAM_IDENTITY = FileIdentity("<stdin>", -1, -1)
#: what the pipe buffer is raised to when reading a pipe (fewer, larger reads)
PIPE_BUFFER = 1024 * 1024


class StreamSource:
    """A non-seekable stream (standard input): read once, in order; each part buffered once, in memory.

    Why buffers and not a temporary file: the whole point of ``put -`` is to never write the
    dump to disk. Each part is read into one of ``buffers`` preallocated buffers (anonymous
    mmaps: pages cost memory only once written), hashed and sent from there, retried from
    there, and the buffer is reused once the part is on the server. So memory is bounded by
    ``buffers x part_size`` (at most ``--memory``; no more than ``jobs + 1`` parts: one being
    read while the others are sent), and the reader waits only when every buffer holds a part
    not yet on the server.

    The last part is held back until the stream's end is checked (its length against the
    manifest, ``expect_size``, ``expect_sha256``): a stream of the wrong length never puts a
    short, wrong last part on the server, and a re-run of the producer can reuse every part
    sent. A full part is dispatched once one more byte has been read after it (so it is not the last).
    """

    replayable = False  # bytes cannot be read twice: no pre-checks, nothing to re-read on resume

    def __init__(self, stream: Readable, m: Manifest, memory: int, *, jobs: int = 8, name: str = "-",
                 expect_size: int | None = None, expect_sha256: str | None = None) -> None:
        if memory < m.part_size:
            raise UsageError(f"--memory {format_size(memory)} cannot hold one part of this manifest "
                             f"({format_size(m.part_size)}): a stream's parts are buffered in memory",
                             f"Give --memory {format_size(m.part_size * 2)} or more.")
        self.m = m
        self.stream = stream
        self.name = name
        self.identity = STREAM_IDENTITY
        # one buffer per part in flight and one being read: more would only hold parts waiting for a worker
        self.buffers = max(1, min(memory // m.part_size, jobs + 1, len(m.parts)))
        self.expect_size = expect_size
        self.expect_sha256 = expect_sha256.lower() if expect_sha256 else None
        self.size: int | None = None  # known once the stream has ended
        self.bytes_read = 0
        self.parts_read = 0
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._made = 0
        self._owner: dict[int, mmap.mmap] = {}  # part number -> its buffer, while the engine holds it
        self._lock = threading.Lock()
        _widen_pipe(stream)

    def parts(self, m: Manifest, subset: Sequence[int] | str | None) -> tuple[list[Part], list[Part]]:
        """Unknown until the stream ends: ``([], [])`` before, then every part it filled."""
        if subset is not None:
            raise UsageError("--parts needs a file: a stream is read once, from its start",
                             "Upload the whole stream, or write it to a file and use --parts.")
        if self.size is None:
            return [], []
        every = m.parts_for_file(self.size)
        return every, every

    # -- buffers ---------------------------------------------------------------------------
    def _take(self, cancel: threading.Event) -> mmap.mmap:
        with self._lock:
            if self._made < self.buffers:
                self._made += 1
                return mmap.mmap(-1, self.m.part_size)
        while True:
            try:
                return self._free.get(timeout=0.1)
            except queue.Empty:
                if cancel.is_set():
                    raise Cancelled() from None

    def release(self, task: PartTask) -> None:
        """The engine is done with a part: its buffer takes the next one."""
        with self._lock:
            buf = self._owner.pop(task.number, None)
        if buf is not None:
            self._free.put(buf)

    # -- reading -----------------------------------------------------------------------------
    def _fill(self, view: memoryview, want: int, start: int) -> int:
        got = start
        while got < want:
            try:
                n = self.stream.readinto(view[got:want])
            except OSError as exc:
                raise NoInputError(f"cannot read standard input: {exc.strerror or exc}") from None
            if not n:
                break
            got += n
        return got

    def tasks(self, held: dict[int, tuple[int, str]], content_md5: bool, cancel: threading.Event,
              tail_url: Callable[[Part, int], str], on_read: Callable[[int], None] | None = None) -> Iterator[PartTask]:
        """The parts as they are read; ``held`` maps part numbers to the ``(size, md5)`` the server holds."""
        m = self.m
        sha = hashlib.sha256() if self.expect_sha256 else None
        peek = bytearray(1)
        carry = 0  # 1 when ``peek`` holds the first byte of the next part
        for p in m.parts:
            buf = self._take(cancel)
            view = memoryview(buf)
            if carry:
                view[0] = peek[0]
            got = self._fill(view, p.size, carry)
            self.bytes_read += got - carry  # the carried byte was counted when it was peeked
            if on_read is not None:
                on_read(got)
            if sha is not None:
                sha.update(view[:got])
            carry = self._fill(memoryview(peek), 1, 0) if got == p.size else 0  # one more byte: not the last
            self.bytes_read += carry
            self.parts_read += 1
            if carry:
                if p.number == len(m.parts):
                    self._free.put(buf)
                    raise self._too_long(p.offset + got)
                yield self._task(p, buf, view[:got], p.url, held, content_md5)
                continue
            total = p.offset + got
            self._check_end(total, sha)
            self.size = total
            url = p.url if got == p.size else tail_url(p, total)
            yield self._task(replace(p, size=got), buf, view[:got], url, held, content_md5)
            return

    def _task(self, p: Part, buf: mmap.mmap, data: memoryview, url: str, held: dict[int, tuple[int, str]],
              content_md5: bool) -> PartTask:
        with self._lock:
            self._owner[p.number] = buf
        size_md5 = held.get(p.number)
        held_md5 = size_md5[1] if size_md5 is not None and size_md5[0] == len(data) else None
        return PartTask(p.number, p.offset, len(data), url, p.md5, content_md5, data=data, held_md5=held_md5)

    def _too_long(self, accepted: int) -> DataError:
        m = self.m
        what = "maximum" if m.size_is_max else "size"
        return DataError(f"standard input is longer than the manifest's {what} of {m.size} bytes "
                         f"({format_size(m.size)}): reading stopped after {accepted} bytes; nothing was completed",
                         "Ask the admin for a manifest with a larger --max-size, then pipe the data again."
                         if m.size_is_max else "Ask the admin for a manifest minted with --max-size, then pipe again.")

    def _check_end(self, total: int, sha: Any) -> None:
        m = self.m
        if not m.size_is_max and total != m.size:
            raise DataError(f"standard input ended after {total} bytes, but the manifest is for exactly {m.size} "
                            "bytes; nothing was completed",
                            "Check that the producer succeeded, then pipe its whole output again (parts already "
                            "sent are skipped).")
        if self.expect_size is not None and total != self.expect_size:
            raise DataError(f"standard input ended after {total} bytes, not the {self.expect_size} of --expect-size; "
                            "nothing was completed",
                            "Check that the producer succeeded, then run the same pipeline again (parts already "
                            "sent are skipped).")
        if sha is not None and sha.hexdigest() != self.expect_sha256:
            raise DataError(f"standard input's SHA-256 is {sha.hexdigest()}, not the {self.expect_sha256} of "
                            "--expect-sha256; nothing was completed",
                            "Check that the producer succeeded, then run the same pipeline again.")

    def digest(self) -> tuple[list[str], str, int]:
        """Read the whole stream through one small buffer: ``(part MD5s, whole MD5, size)``, its end checked.

        For a re-run after the upload was completed: the producer's output is compared with the
        object without sending (or holding) anything.
        """
        m = self.m
        whole, buf = hashlib.md5(), bytearray(CHUNK)
        view = memoryview(buf)
        md5s: list[str] = []
        total = 0
        sha = hashlib.sha256() if self.expect_sha256 else None
        for p in m.parts:
            h, got = hashlib.md5(), 0
            while got < p.size:
                n = self._fill(view, min(len(buf), p.size - got), 0)
                if not n:
                    break
                for x in (h, whole, sha):
                    if x is not None:
                        x.update(view[:n])
                got += n
            total += got
            if got < p.size or p.number == len(m.parts):
                if got == p.size and self._fill(view, 1, 0):
                    raise self._too_long(total)
                if got or not md5s:
                    md5s.append(h.hexdigest())
                break
            md5s.append(h.hexdigest())
        self._check_end(total, sha)
        self.size = self.bytes_read = total
        return md5s, whole.hexdigest(), total

    def close(self) -> None:
        pass  # standard input belongs to the caller


def _widen_pipe(stream: Any) -> None:
    """Raise a pipe's buffer (64 KiB by default on Linux) so each read moves more: less CPU per GiB."""
    try:
        fd = stream.fileno()
        if stat.S_ISFIFO(os.fstat(fd).st_mode) and fcntl is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BUFFER)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # not a pipe, or not allowed (/proc/sys/fs/pipe-max-size): the default works, only slower


def open_stdin() -> io.FileIO:
    """Standard input as an unbuffered binary stream (readinto goes straight to the pipe)."""
    binary_stdin()
    return open(0, "rb", buffering=0, closefd=False)  # noqa: SIM115 - the caller's descriptor


__all__ = ["FileSource", "StreamSource", "check_file", "check_content", "file_parts", "open_stdin",
           "STREAM_IDENTITY"]
