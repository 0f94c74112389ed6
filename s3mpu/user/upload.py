"""Upload policy: what to send, what to skip, when to complete (the user side of ``s3mpu put``).

:mod:`s3mpu.user.transfer` moves bytes; this module decides. In order:
1. the file must fit the manifest *before one byte is sent* (exit 65, both sizes named);
2. one cheap presigned request (ListParts) gives the server's clock, proves the URLs still
   work (an expired manifest fails here, exit 77, nothing sent) and tells which parts S3 has;
3. the journal (or, when it is lost, the relay's status or that listing, checked against the
   local MD5s) says which parts are already done;
4. the rest goes through the transfer engine; each verified part is journalled (fsync);
5. completion through the relay, then the composite ETag and the size are checked.
Nothing here imports boto3: the user has no credentials and the put path must stay light.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from s3mpu.errors import (AccessDeniedError, DataError, InterruptedError_, NoInputError, PartialError, S3mpuError,
                     TempFailError, UsageError)
from s3mpu.user.httpclient import HttpClient
from s3mpu.user.journal import FileIdentity, Journal, journal_path
from s3mpu.layout import composite_etag
from s3mpu.manifest import Manifest, Part
from s3mpu.user.progress import NullProgress, ProgressSink
from s3mpu.user.ratelimit import TokenBucket
from s3mpu.user.transfer import CHUNK, PartDone, PartTask, RetryPolicy, Transfer, hash_range, split
from s3mpu.user.integrity import check_unchanged, known_parts, not_completed_message, verify_sent
from s3mpu.user.integrity import ranges as _ranges
from s3mpu.user.lock import UploadLock
from s3mpu.user.resume import (etag_mismatches, expired_hint, next_commands, preflight, relay_preflight,
                               resume_from_server, server_parts)
from s3mpu.user.tail import with_tail_url
from s3mpu.units import MiB, format_duration, format_size, parse_parts_spec, parse_size, utc_iso

DEFAULT_JOBS = 8
DEFAULT_RETRIES = 5
SKEW_WARN_SECONDS = 120


@dataclass
class UploadResult:
    """What ``put`` did; ``completed`` is False with ``--no-complete`` or a partial ``--parts`` run."""

    key: str
    bucket: str
    size: int
    etag: str | None
    parts: int
    seconds: float
    bytes_sent: int
    mib_per_s: float
    completed: bool
    parts_uploaded: int = 0
    parts_skipped: int = 0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "bucket": self.bucket, "size": self.size, "etag": self.etag, "parts": self.parts,
                "seconds": round(self.seconds, 3), "bytes_sent": self.bytes_sent,
                "mib_per_s": round(self.mib_per_s, 2), "completed": self.completed,
                "parts_uploaded": self.parts_uploaded, "parts_skipped": self.parts_skipped}


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


def make_relay(m: Manifest, relay: Any, retries: int = 3, ca_bundle: str | None = None) -> Any:
    """A RelayClient for ``relay`` (client object or URL) or the manifest's relay; None without one."""
    if relay is not None and not isinstance(relay, str):
        return relay
    url = relay if isinstance(relay, str) else (m.relay.url if m.relay else None)
    if not url:
        return None
    from s3mpu.user.relayclient import RelayClient

    return RelayClient(url, retries=retries, ca_bundle=ca_bundle)


def upload(manifest: Manifest, path: str | os.PathLike[str], *, jobs: int | None = None, retries: int | None = None,
           limit_rate: int | str | None = None, parts: Sequence[int] | str | None = None, complete: bool = True,
           progress: ProgressSink | None = None, relay: Any = None, manifest_path: str | None = None,
           warn: Callable[[str], None] | None = None, info: Callable[[str], None] | None = None,
           connect_timeout: float = 10.0, read_timeout: float = 60.0, retry: RetryPolicy | None = None,
           cancel: threading.Event | None = None, state_dir: Path | None = None, ca_bundle: str | None = None,
           proxy: str | None = None, verify: bool = False) -> UploadResult:
    """Upload ``path`` through ``manifest``; resume what a previous run did; complete unless told not to.

    ``verify`` re-reads the whole file after the last part and compares it with what was sent
    (content proof, at the cost of a second read) before completing.
    """
    m = manifest
    warn = warn or (lambda _s: None)
    info = info or (lambda _s: None)
    jobs = max(1, int(jobs or DEFAULT_JOBS))
    retry = retry or RetryPolicy(retries=DEFAULT_RETRIES if retries is None else max(0, int(retries)))
    rate = parse_size(limit_rate) if isinstance(limit_rate, str) else limit_rate
    progress = progress or NullProgress()
    file_path = str(path)
    mp, put_cmd = next_commands(manifest_path, file_path)
    started = time.monotonic()

    ident = check_file(m, path)  # 66/65 before anything else, before any network
    every, mine = file_parts(m, ident.size, parts)
    lock = UploadLock.acquire(m.upload_id, state_dir)  # 75 (another run) / 78 (state dir unusable), nothing sent
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        lock.release()
        raise NoInputError(f"cannot open {path}: {exc.strerror or exc}") from None
    http = HttpClient(jobs, connect_timeout=connect_timeout, read_timeout=read_timeout, ca_bundle=ca_bundle,
                      proxy=proxy)
    relay_client = make_relay(m, relay, ca_bundle=ca_bundle)
    cancel = cancel or threading.Event()
    finished = False  # the upload is complete: its lock file can go too
    try:
        try:
            pre = preflight(m, http, manifest_path, file_path)
        except NoInputError:
            # The upload is gone: completed by an earlier run (exit 0), or aborted/expired (66).
            reply = already_completed(m, relay_client, fd, every, ident.size)
            if reply is None:
                raise
            Journal(journal_path(m.upload_id, state_dir), m.upload_id, m.bucket, m.key, ident).completed(
                reply.get("etag"), reply.get("size", ident.size))
            finished = True
            elapsed = time.monotonic() - started
            return UploadResult(key=m.key, bucket=m.bucket, size=ident.size, etag=reply.get("etag"),
                                parts=len(every), seconds=elapsed, bytes_sent=0, mib_per_s=0.0, completed=True,
                                parts_uploaded=0, parts_skipped=len(mine),
                                message="already completed earlier; the object matches the file")
        if pre.skew is not None and abs(pre.skew) > SKEW_WARN_SECONDS:
            warn(f"the local clock is {format_duration(abs(pre.skew))} {'ahead of' if pre.skew > 0 else 'behind'} "
                 "the server's; expiry checks use the server's clock")
        server_now = pre.server_now or datetime.now(timezone.utc)
        if server_now >= m.expires:
            raise AccessDeniedError(f"the manifest's URLs expired at {m.expires_at} (server time {utc_iso(server_now)}); "
                                    "nothing was sent", expired_hint(manifest_path, file_path))

        relay_status = relay_preflight(m, relay_client, manifest_path, file_path, warn) if complete else None
        journal = Journal.open(m.upload_id, m.bucket, m.key, ident, state_dir)
        if journal.stale:
            warn(f"{file_path} changed since the last run ({'; '.join(journal.changes)}); checking every part "
                 "against the server: parts it holds with the same MD5 are kept, the others are sent again")
        by_number = {p.number: p for p in every}
        done = {n for n, r in journal.parts.items() if n in by_number and r.size == by_number[n].size}
        listing = known_parts(pre, relay_status)
        if listing is not None and done:
            lost = done - {int(h["number"]) for h in listing}
            if lost:
                warn(f"{len(lost)} journalled part(s) are not on the server any more; sending them again")
                done -= lost
            other = etag_mismatches({n: journal.parts[n].md5 for n in done}, listing)
            if other:
                warn(f"the server holds other bytes than this file's for part(s) {_ranges(other)} "
                     "(sent from another file or machine); sending them again")
                done -= set(other)
        found: dict[int, str] = {}
        if not journal.existed or journal.stale:
            held = listing if listing is not None else server_parts(m, relay_client, pre, warn)
            if held:
                found = resume_from_server(m, mine, held, fd, cancel)
                if found:
                    info(f"the server already holds {len(found)} matching part(s); skipping them")
                done |= set(found)
        mine = with_tail_url(m, relay_client, ident.size, mine, done)  # max-size: the last part's URL (SPEC §5)

        send_md5 = m.signature_version == "s3v4"  # SigV2 signs Content-MD5: send it only where the URL bound it
        todo = split([PartTask(p.number, p.offset, p.size, p.url, p.md5, send_md5) for p in mine], done)
        check_content(fd, [t for t in todo if t.md5], file_path)  # content-bound: 65 before the first byte
        for n, md5 in sorted(found.items()):  # the first journal write of a run that goes on
            journal.record(n, by_number[n].size, md5)
        total = sum(p.size for p in mine)
        already = sum(p.size for p in mine if p.number in done)
        left = total - already
        if rate and left:
            eta = left / rate
            if server_now + timedelta(seconds=eta) > m.expires:
                warn(f"at --limit-rate {format_size(rate)}/s the upload needs about {format_duration(eta)}, "
                     f"but the URLs expire at {m.expires_at}; ask the admin for a refreshed manifest (s3mpu mint --refresh)")
        limiter = TokenBucket(rate) if rate else None
        transfer = Transfer(fd, http, jobs=jobs, retry=retry, limiter=limiter, progress=progress,
                            on_done=lambda d: journal.record(d.number, d.size, d.md5), cancel=cancel)
        clock_offset = (server_now - datetime.now(timezone.utc)).total_seconds()
        warned = [False]
        t0 = time.monotonic()

        def tick() -> None:  # in the calling thread: warn once when the URLs will expire before the end
            elapsed = time.monotonic() - t0
            sent = transfer.bytes_sent
            if warned[0] or elapsed < 5 or sent <= 0:
                return
            eta = (left - sent) / (sent / elapsed)
            finish = datetime.now(timezone.utc) + timedelta(seconds=clock_offset + eta)
            if finish > m.expires:
                warned[0] = True
                warn(f"at the current speed the upload ends in about {format_duration(eta)}, after the URLs expire "
                     f"({m.expires_at}); ask the admin now for a refreshed manifest (s3mpu mint --refresh {mp})")

        try:
            progress.start(total, already, len(todo))  # inside: a Ctrl-C while it prints still gets the hint
            outcome = transfer.run(todo, tick=tick)
        except KeyboardInterrupt:
            journal.close()
            n_done = len(done) + len(transfer.outcome.done)
            raise InterruptedError_(f"interrupted: {n_done} of {len(mine)} parts are uploaded and recorded",
                                    f"Re-run the same command to resume: {put_cmd}") from None
        finally:
            progress.close()
        journal.close()
        done |= {d.number for d in outcome.done}
        if outcome.fatal is not None:
            raise _explain(outcome.fatal, m, manifest_path, file_path)
        if outcome.cancelled:  # stopped from outside (a library caller's cancel event)
            raise InterruptedError_(f"stopped: {len(done & {p.number for p in mine})} of {len(mine)} parts are "
                                    "uploaded and recorded", f"Re-run the same command to resume: {put_cmd}")
        if outcome.failed or len(done & {p.number for p in mine}) < len(mine):
            missing = sorted({p.number for p in mine} - done)
            first = next(iter(outcome.failed.values()), None)
            why = f" (last error: {first.message})" if first else ""
            if not outcome.done and first is not None and isinstance(first, TempFailError):
                raise TempFailError(f"no part could be uploaded{why}", f"Retry later with the same command: {put_cmd}")
            raise PartialError(f"{len(missing)} of {len(mine)} parts failed after retries{why}",
                               f"Re-run the same command; it resumes: {put_cmd}", failed=missing)

        elapsed = time.monotonic() - started
        sent = outcome.bytes_sent
        result = UploadResult(key=m.key, bucket=m.bucket, size=ident.size, etag=None, parts=len(every),
                              seconds=elapsed, bytes_sent=sent, mib_per_s=sent / MiB / max(elapsed, 1e-6),
                              completed=False, parts_uploaded=len(outcome.done),
                              parts_skipped=len(mine) - len(outcome.done))
        all_numbers = {p.number for p in every}
        recorded = set(journal.parts) & all_numbers
        check_unchanged(ident, fd, file_path)  # 65, nothing completed: the bytes sent may mix two versions
        if verify:
            verify_sent(fd, [p for p in every if p.number in recorded], journal.parts, file_path)
        if not complete or recorded != all_numbers:
            on_server = {int(h["number"]) for h in listing or []} | recorded
            result.message = not_completed_message(mine_numbers(mine), sorted(all_numbers - on_server), len(every), mp,
                                                   file_path, asked=not complete)
            return result
        if relay_client is None or not (m.relay and m.relay.token):
            result.message = f"all parts uploaded; this manifest names no relay: the admin completes with: s3mpu complete {mp}"
            return result
        md5s = [journal.parts[n].md5 for n in sorted(all_numbers)]
        reply = complete_via_relay(m, relay_client, md5s, ident.size, mp, rerun=put_cmd)
        journal.completed(reply.get("etag"), reply.get("size", ident.size))
        finished = True
        result.etag = reply.get("etag")
        result.completed = True
        result.seconds = time.monotonic() - started
        result.mib_per_s = sent / MiB / max(result.seconds, 1e-6)
        return result
    finally:
        os.close(fd)
        http.close()
        lock.release(forget=finished)


def already_completed(m: Manifest, relay_client: Any, fd: int, every: Sequence[Part], size: int) -> dict[str, Any] | None:
    """When the upload is gone, ask the relay (idempotent complete) whether it became this file's object."""
    if relay_client is None or not (m.relay and m.relay.token):
        return None
    md5s, whole = _part_and_file_md5s(fd, every)
    try:
        reply: dict[str, Any] = relay_client.complete(m.relay.token, parts=[{"number": i + 1, "etag": e}
                                                                            for i, e in enumerate(md5s)], size=size)
    except TempFailError as exc:  # not "ask for a new manifest": it may well be complete
        raise TempFailError(f"the upload no longer exists on the server: it was completed or aborted, and the relay "
                            f"could not tell which ({exc.message})", "Re-run the same command later; it will tell.") from None
    except S3mpuError:
        return None
    verify_completed(reply, md5s, size)
    etag = str(reply.get("md5") or reply.get("etag") or "").strip('"').lower()
    if len(etag) == 32 and etag != whole:  # servers like rclone report the plain MD5 of the object
        raise DataError(f"{m.uri} was already completed, but its MD5 {etag} is not this file's ({whole})",
                        "This upload holds other bytes; ask the admin for a new manifest to upload this file.")
    return reply


def _part_and_file_md5s(fd: int, parts: Sequence[Part]) -> tuple[list[str], str]:
    """Every part's MD5 and the whole file's, in one read."""
    whole = hashlib.md5()
    out = []
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for p in parts:
        h = hashlib.md5()
        pos = 0
        while pos < p.size:
            n = os.preadv(fd, [view[:min(len(buf), p.size - pos)]], p.offset + pos)
            if n <= 0:
                raise DataError(f"the file ended early at byte {p.offset + pos}")
            h.update(view[:n])
            whole.update(view[:n])
            pos += n
        out.append(h.hexdigest())
    return out, whole.hexdigest()


def mine_numbers(mine: Sequence[Part]) -> list[int]:
    return [p.number for p in mine]


def complete_via_relay(m: Manifest, relay_client: Any, md5s: Sequence[str] | None, size: int | None,
                       manifest_path: str = "MANIFEST", rerun: str | None = None) -> dict[str, Any]:
    """Ask the relay to complete, then check size and composite ETag against what we sent.

    A relay killed (or cut off) mid-complete may have completed the object already: the message
    says so, and the re-run (``rerun``, default ``s3mpu complete``) tells which it was.
    """
    assert m.relay and m.relay.token
    parts = [{"number": i + 1, "etag": e} for i, e in enumerate(md5s)] if md5s else None
    try:
        reply = relay_client.complete(m.relay.token, parts=parts, size=size)
    except TempFailError as exc:
        again = rerun or f"s3mpu complete {manifest_path}"
        raise TempFailError(f"every part is uploaded, but completing failed: {exc.message}; the upload may already "
                            "be complete if the relay got the request",
                            f"Nothing needs re-sending; re-run later, it tells whether the object exists: {again}") from None
    verify_completed(reply, md5s, size)
    return reply


def verify_completed(reply: dict[str, Any], md5s: Sequence[str] | None, size: int | None) -> None:
    """The object must have our size and, where the server reports the ``-N`` form, our composite ETag."""
    got_size = reply.get("size")
    if size is not None and got_size is not None and int(got_size) != size:
        raise DataError(f"the completed object has {got_size} bytes, the file has {size}",
                        "Report this to the admin: the object does not match the file.")
    etag = str(reply.get("etag") or "").strip('"').lower()
    if md5s and "-" in etag:
        want = composite_etag(md5s)
        if etag != want:
            raise DataError(f"the completed object's ETag {etag} is not the composite of the parts sent ({want})",
                            "Report this to the admin: the object does not match the file.")


def _explain(err: S3mpuError, m: Manifest, manifest_path: str | None, file_path: str) -> S3mpuError:
    """Add the exact next command to an error that stopped the transfer."""
    if isinstance(err, AccessDeniedError):
        if "expired" in err.message:
            return AccessDeniedError(err.message, expired_hint(manifest_path, file_path))
        if datetime.now(timezone.utc) >= m.expires:
            return AccessDeniedError(f"{err.message}; the manifest expired at {m.expires_at}",
                                     expired_hint(manifest_path, file_path))
    return err


__all__ = ["UploadResult", "upload", "check_file", "complete_via_relay", "verify_completed", "composite_etag",
           "PartDone"]
