"""Upload policy: what to send, what to skip, when to complete (the user side of ``s3mpu put``).

:mod:`s3mpu.user.transfer` moves bytes; :mod:`s3mpu.user.sources` says where they come from;
this module decides. :func:`upload` is a short sequence of named steps over one :class:`Run`
(the state they hand on to each other), so a check can be added where it belongs:
1. ``open_source``: a file must fit the manifest *before one byte is sent* (exit 65, both sizes named);
   standard input becomes a stream source sized for ``--memory``;
2. ``look_at_server``: one cheap presigned request (ListParts) gives the server's clock, proves the
   URLs still work (an expired manifest fails here, exit 77, nothing sent) and tells which parts
   S3 has; an upload completed by an earlier run ends here (exit 0);
3. ``find_done``: the journal (or, when it is lost, the relay's status or that listing, checked
   against the local MD5s) says which parts are already done;
4. ``plan_sends``: the parts still to send, checked against a plan's MD5s, with an expiry estimate;
5. ``send_parts``: the transfer engine sends them; each verified part is journalled (fsync);
6. ``check_sent``: a fatal error, a cancel or failed parts end the run with the next command;
7. ``finish``: completion through the relay, then the composite ETag and the size are checked.
Nothing here imports boto3: the user has no credentials and the put path must stay light.
"""
from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from s3mpu.errors import (AccessDeniedError, InterruptedError_, NoInputError, PartialError, S3mpuError,
                          TempFailError, UsageError)
from s3mpu.layout import composite_etag
from s3mpu.manifest import Manifest, Part
from s3mpu.units import MiB, format_duration, format_size, parse_size, utc_iso
from s3mpu.user.state import Options, Run, UploadResult
from s3mpu.user.finish import already_completed, complete_via_relay, make_relay, verify_completed
from s3mpu.user.httpclient import HttpClient
from s3mpu.user.journal import Journal, journal_path
from s3mpu.user.progress import NullProgress, ProgressSink
from s3mpu.user.ratelimit import TokenBucket
from s3mpu.user.integrity import check_unchanged, known_parts, not_completed_message, verify_sent
from s3mpu.user.integrity import ranges as _ranges
from s3mpu.user.lock import UploadLock
from s3mpu.user.resume import (etag_mismatches, expired_hint, preflight, relay_preflight, resume_from_server,
                               server_parts)
from s3mpu.user.sources import FileSource, Readable, StreamSource, check_content, check_file, file_parts, open_stdin
from s3mpu.user.tail import with_tail_url
from s3mpu.user.transfer import PartDone, PartTask, RetryPolicy, Transfer, split

DEFAULT_JOBS = 8
DEFAULT_RETRIES = 5
DEFAULT_MEMORY = 256 * MiB  # parts of a stream held in memory at once (put -)
SKEW_WARN_SECONDS = 120


def upload(manifest: Manifest, path: str | os.PathLike[str], *, jobs: int | None = None, retries: int | None = None,
           limit_rate: int | str | None = None, parts: Sequence[int] | str | None = None, complete: bool = True,
           progress: ProgressSink | None = None, relay: Any = None, manifest_path: str | None = None,
           warn: Callable[[str], None] | None = None, info: Callable[[str], None] | None = None,
           connect_timeout: float = 10.0, read_timeout: float = 60.0, retry: RetryPolicy | None = None,
           cancel: threading.Event | None = None, state_dir: Path | None = None, ca_bundle: str | None = None,
           proxy: str | None = None, memory: int | str | None = None, expect_size: int | str | None = None,
           expect_sha256: str | None = None, debug: Callable[[str], None] | None = None,
           verify: bool = False) -> UploadResult:
    """Upload ``path`` through ``manifest``; resume what a previous run did; complete unless told not to.

    ``verify`` re-reads the whole file after the last part and compares it with what was sent
    (content proof, at the cost of a second read) before completing.

    ``path`` may be ``"-"`` (standard input) or a binary stream with ``readinto``: the parts are
    read as they come, each buffered once, with at most ``memory`` bytes of parts in memory
    (default 256 MiB; the parallelism is lowered to fit). ``expect_size`` / ``expect_sha256``
    check the stream's end before its last part is sent (a failed producer completes nothing).
    """
    jobs = max(1, int(jobs or DEFAULT_JOBS))
    opts = Options(jobs=jobs,
                   retry=retry or RetryPolicy(retries=DEFAULT_RETRIES if retries is None else max(0, int(retries))),
                   rate=parse_size(limit_rate) if isinstance(limit_rate, str) else limit_rate, subset=parts,
                   complete=complete, manifest_path=manifest_path, state_dir=state_dir,
                   progress=progress or NullProgress(), warn=warn or (lambda _s: None),
                   info=info or (lambda _s: None), debug=debug or (lambda _s: None), verify=verify)
    started = time.monotonic()
    source = open_source(manifest, path, opts, memory, expect_size, expect_sha256)  # 66/65/64 before any network
    try:
        every, mine = source.parts(manifest, parts)
        lock = UploadLock.acquire(manifest.upload_id, state_dir)  # 75 (another run) / 78 (state dir), nothing sent
    except BaseException:
        source.close()
        raise
    run = Run(manifest, source, opts, HttpClient(opts.jobs, connect_timeout=connect_timeout, read_timeout=read_timeout,
                                                 ca_bundle=ca_bundle, proxy=proxy),
              make_relay(manifest, relay, ca_bundle=ca_bundle), cancel or threading.Event(), started, every, mine,
              lock=lock)
    try:
        gone = look_at_server(run)
        if gone is not None:
            return gone
        find_done(run)
        plan_sends(run)
        send_parts(run)
        check_sent(run)
        return finish(run)
    finally:
        run.close()


def open_source(m: Manifest, path: Any, opts: Options, memory: int | str | None, expect_size: int | str | None,
                expect_sha256: str | None) -> FileSource | StreamSource:
    """A file is checked against the manifest now; a stream is sized for ``memory`` (fewer jobs if needed)."""
    if not (path == "-" or hasattr(path, "readinto")):
        if expect_size is not None or expect_sha256 is not None:
            raise UsageError("--expect-size and --expect-sha256 are for standard input ('-'): a file's size is "
                             "checked against the manifest already")
        return FileSource.open(m, path)
    mem = DEFAULT_MEMORY if memory is None else (parse_size(memory) if isinstance(memory, str) else int(memory))
    want = parse_size(expect_size) if isinstance(expect_size, str) else expect_size
    if want is not None and (want > m.size or (not m.size_is_max and want != m.size)):
        raise UsageError(f"--expect-size {want} does not fit the manifest ({'at most ' if m.size_is_max else ''}"
                         f"{m.size} bytes)")
    if expect_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", expect_sha256):
        raise UsageError(f"--expect-sha256 takes 64 hex digits, not {expect_sha256!r}")
    stream: Readable = open_stdin() if path == "-" else path
    if path == "-" and os.isatty(0):
        opts.warn("reading the data to upload from the terminal (FILE is '-'); end it with Ctrl-D, "
                  "or pipe it: producer | s3mpu put MANIFEST -")
    source = StreamSource(stream, m, mem, jobs=opts.jobs, expect_size=want, expect_sha256=expect_sha256)
    jobs = min(opts.jobs, source.buffers)
    opts.debug(f"standard input: up to {source.buffers} part(s) of {format_size(m.part_size)} in memory "
               f"(--memory {format_size(mem)}), {jobs} sent in parallel"
               + (f" (-j {opts.jobs} lowered to fit)" if jobs < opts.jobs else ""))
    opts.jobs = jobs
    return source


def look_at_server(run: Run) -> UploadResult | None:
    """Preflight: server clock, URL validity, parts held. Returns a result when an earlier run completed it."""
    m, opts = run.m, run.opts
    try:
        run.pre = preflight(m, run.http, opts.manifest_path, run.source.name)
    except NoInputError:
        # The upload is gone: completed by an earlier run (exit 0), or aborted/expired (66).
        source = run.source
        if isinstance(source, FileSource):
            reply = already_completed(m, run.relay, lambda: (*source.md5s_and_whole(run.every), source.size))
        else:  # a stream: read it (again, from the producer) to compare it with the object
            reply = already_completed(m, run.relay, source.digest)
            run.every = run.mine = source.parts(m, None)[0]
        if reply is None:
            raise
        Journal(journal_path(m.upload_id, opts.state_dir), m.upload_id, m.bucket, m.key, run.source.identity).completed(
            reply.get("etag"), reply.get("size", run.source.size))
        run.finished = True
        return run.result(etag=reply.get("etag"), completed=True, parts_uploaded=0, parts_skipped=len(run.mine),
                          message="already completed earlier; the object matches the file")
    pre = run.pre
    if pre.skew is not None and abs(pre.skew) > SKEW_WARN_SECONDS:
        opts.warn(f"the local clock is {format_duration(abs(pre.skew))} "
                  f"{'ahead of' if pre.skew > 0 else 'behind'} the server's; expiry checks use the server's clock")
    run.server_now = pre.server_now or datetime.now(timezone.utc)
    if run.server_now >= m.expires:
        raise AccessDeniedError(f"the manifest's URLs expired at {m.expires_at} (server time "
                                f"{utc_iso(run.server_now)}); nothing was sent",
                                expired_hint(opts.manifest_path, run.source.name))
    run.relay_status = relay_preflight(m, run.relay, opts.manifest_path, run.source.name, opts.warn) \
        if opts.complete else None
    return None


def find_done(run: Run) -> None:
    """Which parts are already on the server: the journal, checked against the listing, else the server's list."""
    m, opts, pre = run.m, run.opts, run.pre
    journal = run.journal = Journal.open(m.upload_id, m.bucket, m.key, run.source.identity, opts.state_dir)
    assert pre is not None
    run.listing = listing = known_parts(pre, run.relay_status)
    if isinstance(run.source, StreamSource):
        run.held = stream_held(run, journal)
        return
    if journal.stale:
        opts.warn(f"{run.source.name} changed since the last run ({'; '.join(journal.changes)}); checking every "
                  "part against the server: parts it holds with the same MD5 are kept, the others are sent again")
    by_number = {p.number: p for p in run.every}
    done = {n for n, r in journal.parts.items() if n in by_number and r.size == by_number[n].size}
    if listing is not None and done:
        lost = done - {int(h["number"]) for h in listing}
        if lost:
            opts.warn(f"{len(lost)} journalled part(s) are not on the server any more; sending them again")
            done -= lost
        other = etag_mismatches({n: journal.parts[n].md5 for n in done}, listing)
        if other:
            opts.warn(f"the server holds other bytes than this file's for part(s) {_ranges(other)} "
                      "(sent from another file or machine); sending them again")
            done -= set(other)
    if not journal.existed or journal.stale:
        held = listing if listing is not None else server_parts(m, run.relay, pre, opts.warn)
        if held:
            run.found = resume_from_server(m, run.mine, held, run.source.fd, run.cancel)
            if run.found:
                opts.info(f"the server already holds {len(run.found)} matching part(s); skipping them")
            done |= set(run.found)
    run.done = done


def stream_held(run: Run, journal: Journal) -> dict[int, tuple[int, str]]:
    """What a stream's parts may match: ``{number: (size, md5)}`` the server holds (else the journal's)."""
    pre = run.pre
    held = run.listing
    if held is None and pre is not None:
        held = server_parts(run.m, run.relay, pre, run.opts.warn)
    if held is None:
        return {n: (r.size, r.md5) for n, r in journal.parts.items()}
    return {int(h["number"]): (int(h.get("size", -1)), str(h.get("etag", "")).strip('"').lower()) for h in held}


def plan_sends(run: Run) -> None:
    """The parts still to send; content-bound ones checked before the first byte; an expiry estimate."""
    m, opts = run.m, run.opts
    if not isinstance(run.source, FileSource):
        return  # a stream's parts are planned as they are read (StreamSource.tasks)
    run.mine = with_tail_url(m, run.relay, run.source.size, run.mine, run.done)  # max-size: last part's URL (§5)
    send_md5 = m.signature_version == "s3v4"  # SigV2 signs Content-MD5: send it only where the URL bound it
    run.todo = split([PartTask(p.number, p.offset, p.size, p.url, p.md5, send_md5) for p in run.mine], run.done)
    run.source.check_content([t for t in run.todo if t.md5])  # content-bound: 65 before the first byte
    by_number = {p.number: p for p in run.every}
    for n, md5 in sorted(run.found.items()):  # the first journal write of a run that goes on
        run.journal.record(n, by_number[n].size, md5)  # type: ignore[union-attr]
    run.total = sum(p.size for p in run.mine)
    run.already = sum(p.size for p in run.mine if p.number in run.done)
    left = run.total - run.already
    if opts.rate and left:
        eta = left / opts.rate
        if run.server_now + timedelta(seconds=eta) > m.expires:
            opts.warn(f"at --limit-rate {format_size(opts.rate)}/s the upload needs about {format_duration(eta)}, "
                      f"but the URLs expire at {m.expires_at}; ask the admin for a refreshed manifest "
                      "(s3mpu mint --refresh)")


def send_parts(run: Run) -> None:
    """Send ``run.todo`` through the transfer engine; each verified part is journalled as it lands."""
    m, opts, journal = run.m, run.opts, run.journal
    assert journal is not None
    limiter = TokenBucket(opts.rate) if opts.rate else None
    source = run.source
    stream = source if isinstance(source, StreamSource) else None
    transfer = Transfer(stream and -1 or source.fd, run.http, jobs=opts.jobs,  # type: ignore[union-attr]
                        retry=opts.retry, limiter=limiter, progress=opts.progress,
                        on_done=lambda d: journal.record(d.number, d.size, d.md5), cancel=run.cancel,
                        on_release=stream.release if stream else None)
    clock_offset = (run.server_now - datetime.now(timezone.utc)).total_seconds()
    left = run.total - run.already
    warned = [False]
    t0 = time.monotonic()

    def tick() -> None:  # in the calling thread: warn once when the URLs will expire before the end
        elapsed = time.monotonic() - t0
        sent = transfer.bytes_sent
        if warned[0] or elapsed < 5 or sent <= 0 or stream:
            return
        eta = (left - sent) / (sent / elapsed)
        finish_at = datetime.now(timezone.utc) + timedelta(seconds=clock_offset + eta)
        if finish_at > m.expires:
            warned[0] = True
            opts.warn(f"at the current speed the upload ends in about {format_duration(eta)}, after the URLs "
                      f"expire ({m.expires_at}); ask the admin now for a refreshed manifest "
                      f"(s3mpu mint --refresh {run.mp})")

    try:
        if stream is not None:
            opts.progress.start(None, 0, None)  # type: ignore[arg-type]  # size unknown: no percentage, no ETA
            read = getattr(opts.progress, "read", None)
            tasks = stream.tasks(run.held, run.m.signature_version == "s3v4", run.cancel,
                                 lambda p, total: tail_url(run, p, total), read)
            run.outcome = transfer.run(tasks, tick=tick)
        else:
            opts.progress.start(run.total, run.already, len(run.todo))
            run.outcome = transfer.run(run.todo, tick=tick)
    except KeyboardInterrupt:
        journal.close()
        n_done = len(run.done) + len(transfer.outcome.done)
        raise InterruptedError_(f"interrupted: {n_done} of {len(run.mine)} parts are uploaded and recorded",
                                f"Re-run the same command to resume: {run.put_cmd}") from None
    finally:
        opts.progress.close()
    journal.close()
    run.done |= {d.number for d in run.outcome.done}
    if stream is not None:  # the parts are known now (or as far as the stream was read)
        run.every, run.mine = stream.parts(run.m, None) if stream.size is not None else \
            (list(run.m.parts[:stream.parts_read]),) * 2


def tail_url(run: Run, p: Part, total: int) -> str:
    """A stream's last, shorter part, once its length is known: the relay's length-bound URL (user/tail.py)."""
    return with_tail_url(run.m, run.relay, total, [replace(p, size=total - p.offset)])[-1].url


def check_sent(run: Run) -> None:
    """Stop with the right error and the next command when the transfer did not send every part."""
    outcome, mine = run.outcome, run.mine_numbers
    assert outcome is not None
    if outcome.fatal is not None:
        raise _explain(outcome.fatal, run.m, run.opts.manifest_path, run.source.name)
    if outcome.cancelled:  # stopped from outside (a library caller's cancel event)
        raise InterruptedError_(f"stopped: {len(run.done & mine)} of {len(mine)} parts are uploaded and recorded",
                                f"Re-run the same command to resume: {run.put_cmd}")
    if outcome.failed or len(run.done & mine) < len(mine):
        missing = sorted(mine - run.done)
        first = next(iter(outcome.failed.values()), None)
        why = f" (last error: {first.message})" if first else ""
        if not outcome.done and first is not None and isinstance(first, TempFailError):
            raise TempFailError(f"no part could be uploaded{why}", f"Retry later with the same command: {run.put_cmd}")
        raise PartialError(f"{len(missing)} of {len(mine)} parts failed after retries{why}",
                           f"Re-run the same command; it resumes: {run.put_cmd}", failed=missing)


def finish(run: Run) -> UploadResult:
    """Complete through the relay when every part is there and we were asked to; else say what comes next."""
    m, opts, journal, outcome = run.m, run.opts, run.journal, run.outcome
    assert journal is not None and outcome is not None
    sent = outcome.bytes_sent
    uploaded = [d for d in outcome.done if d.attempts]
    skipped = sum(d.size for d in outcome.done if not d.attempts)  # a stream's parts the server held
    result = run.result(bytes_sent=sent, parts_uploaded=len(uploaded), parts_skipped=len(run.mine) - len(uploaded),
                        bytes_skipped=skipped)
    if skipped:
        opts.info(f"skipped {format_size(skipped)} ({skipped} bytes, {len(outcome.done) - len(uploaded)} part(s)) "
                  "that the server already held from an earlier run")
    all_numbers = {p.number for p in run.every}
    recorded = set(journal.parts) & all_numbers
    if isinstance(run.source, FileSource):
        source = run.source
        check_unchanged(source.identity, source.fd, source.name)  # 65, nothing completed: a mix of two versions
        if opts.verify:
            verify_sent(source.fd, [p for p in run.every if p.number in recorded], journal.parts, source.name)
    if not opts.complete or recorded != all_numbers:
        on_server = {int(h["number"]) for h in run.listing or []} | recorded
        result.message = not_completed_message(sorted(run.mine_numbers), sorted(all_numbers - on_server),
                                               len(run.every), run.mp, run.source.name, asked=not opts.complete)
        return result
    if run.relay is None or not (m.relay and m.relay.token):
        result.message = ("all parts uploaded; this manifest names no relay: the admin completes with: "
                          f"s3mpu complete {run.mp}")
        return result
    md5s = [journal.parts[n].md5 for n in sorted(all_numbers)]
    reply = complete_via_relay(m, run.relay, md5s, result.size, run.mp, rerun=run.put_cmd)
    journal.completed(reply.get("etag"), reply.get("size", result.size))
    run.finished = True
    result.etag = reply.get("etag")
    result.completed = True
    result.seconds = time.monotonic() - run.started
    result.mib_per_s = sent / MiB / max(result.seconds, 1e-6)
    return result


def mine_numbers(mine: Sequence[Part]) -> list[int]:
    return [p.number for p in mine]


def _explain(err: S3mpuError, m: Manifest, manifest_path: str | None, file_path: str) -> S3mpuError:
    """Add the exact next command to an error that stopped the transfer."""
    if isinstance(err, AccessDeniedError):
        if "expired" in err.message:
            return AccessDeniedError(err.message, expired_hint(manifest_path, file_path))
        if datetime.now(timezone.utc) >= m.expires:
            return AccessDeniedError(f"{err.message}; the manifest expired at {m.expires_at}",
                                     expired_hint(manifest_path, file_path))
    return err


__all__ = ["UploadResult", "upload", "check_file", "check_content", "file_parts", "complete_via_relay",
           "verify_completed", "composite_etag", "make_relay", "already_completed", "PartDone", "Run", "Options"]
