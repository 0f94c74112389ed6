"""Never a wrong object: the file must be the same at the end of a run as at its start.

Why a separate step: each part is hashed just before it is sent and S3 checks that MD5, so a
part is always self-consistent, but a file written to *between* two parts gave an object of
old bytes before the write and new ones after, and exit 0. The file's identity (device,
inode, size, mtime_ns, ctime_ns: the kernel moves ctime on every write and nobody can set it
back) is taken before the first byte and compared again after the last part, before complete.
``put --verify`` goes further and re-reads the bytes (content proof, for filesystems whose
time stamps cannot be trusted).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from s3mpu.errors import DataError
from s3mpu.manifest import Part
from s3mpu.user.journal import FileIdentity, PartRecord
from s3mpu.user.resume import Preflight
from s3mpu.user.parts import CHUNK, LocalReadError, hash_range

_RERUN = ("Make sure nothing writes to the file, then re-run the same command: it checks every part against "
          "the server and sends again only those that differ.")


def check_unchanged(start: FileIdentity, fd: int, file_path: str) -> None:
    """Exit 65 when the open file, or the file now at ``file_path``, is not the one the run started with."""
    changes = start.changes(FileIdentity.of_fd(fd, file_path))
    if not changes:
        try:
            changes = start.changes(FileIdentity.of(file_path))
        except OSError:
            changes = ["it was removed or renamed"]
    if changes:
        raise DataError(f"{file_path} changed during the upload ({'; '.join(changes)}); nothing was completed, "
                        "the parts sent may mix two versions of the file", _RERUN)


def verify_sent(fd: int, parts: Sequence[Part], sent: Mapping[int, PartRecord], file_path: str) -> None:
    """``--verify``: re-read every part and compare its MD5 with the one the server acknowledged."""
    buf = bytearray(CHUNK)
    for p in parts:
        try:
            md5 = hash_range(fd, p.offset, p.size, buf)
        except LocalReadError as exc:
            raise DataError(f"--verify: cannot read part {p.number} of {file_path} again ({exc}); nothing was "
                            "completed", _RERUN) from None
        if md5 != sent[p.number].md5:
            raise DataError(f"--verify: part {p.number} of {file_path} (bytes {p.offset}-{p.offset + p.size - 1}) "
                            f"now has MD5 {md5}, but {sent[p.number].md5} was sent; nothing was completed", _RERUN)


def known_parts(pre: Preflight, relay_status: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """The server's parts from what this run already fetched (the presigned listing, else the relay's status)."""
    if pre.listed is not None and pre.listed.complete:
        return pre.listed.parts
    if relay_status is not None and relay_status.get("upload_exists", True):
        return list(relay_status.get("parts") or [])
    return None


def not_completed_message(mine: Sequence[int], missing: Sequence[int], total: int, manifest_path: str,
                          file_path: str, asked: bool) -> str:
    """What a run that did not complete achieved, and the next step (parts missing from the *whole* upload)."""
    sent = f"part(s) {ranges(mine)} of {total} uploaded" if len(mine) < total else f"all {total} part(s) uploaded"
    if not missing:
        now = f"; all {total} parts are on the server now" if len(mine) < total else ""
        return f"{sent}{now}; complete with: s3mpu complete {manifest_path}"
    return (f"{sent}; part(s) {ranges(missing)} still missing from the upload (upload them with: s3mpu put "
            f"{manifest_path} {file_path} --parts {ranges(missing)}{' --no-complete' if asked else ''}); "
            f"then: s3mpu complete {manifest_path}")


def ranges(numbers: Sequence[int]) -> str:
    """``1-3,7`` for ``[1, 2, 3, 7]``: part lists in messages stay short."""
    out: list[list[int]] = []
    for n in sorted(numbers):
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in out)
