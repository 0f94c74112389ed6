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
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from s3mpu.errors import DataError, NoInputError, UsageError
from s3mpu.manifest import Manifest, Part
from s3mpu.units import format_size, parse_parts_spec
from s3mpu.user.journal import FileIdentity
from s3mpu.user.transfer import CHUNK, PartTask, hash_range


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
            fd = os.open(path, os.O_RDONLY)
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
                n = os.preadv(self.fd, [view[:min(len(buf), p.size - pos)]], p.offset + pos)
                if n <= 0:
                    raise DataError(f"the file ended early at byte {p.offset + pos}")
                h.update(view[:n])
                whole.update(view[:n])
                pos += n
            out.append(h.hexdigest())
        return out, whole.hexdigest()

    def close(self) -> None:
        os.close(self.fd)


__all__ = ["FileSource", "check_file", "check_content", "file_parts"]
