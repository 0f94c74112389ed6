"""The concurrency engine: a bounded pool of workers sending parts through presigned URLs.

Why this shape:
- Memory is bounded by ``jobs x CHUNK``: each worker owns one reusable buffer; a part is read
  from the file at its offset twice (once to compute the MD5 that must be in the
  ``Content-MD5`` header before the body starts, once streamed to the socket), never held whole.
  ``os.preadv``, ``hashlib`` and ``socket.sendall`` all release the GIL.
- Retries are decided here and only here (urllib3's are off): connection errors, timeouts,
  5xx, 408/429 and SlowDown are retried with exponential backoff and jitter; an expired or
  refused URL or a data error stops every worker at once, because it will hit every part.
- Cancellation (Ctrl-C, a fatal error) is one ``threading.Event`` checked between chunks
  and used for every sleep, so workers stop within one chunk.
- Policy (which parts, journal, completion) lives in :mod:`s3mpu.user.upload`; this module only
  moves bytes and reports facts through callbacks and a :class:`~s3mpu.user.progress.ProgressSink`.
"""
from __future__ import annotations

import base64
import hashlib
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import urllib3

from s3mpu.errors import AccessDeniedError, DataError, S3mpuError, TempFailError
from s3mpu.user.httpclient import FileSegment, HttpClient, Reply, ShortFileError
from s3mpu.user.progress import NullProgress, ProgressSink
from s3mpu.user.ratelimit import TokenBucket
from s3mpu.s3errors import classify_http, retryable, xml_error

#: each worker's buffer: the bytes read and hashed at a time. Small enough to stay in the CPU's
#: cache between the read and the hash, and 8 workers' buffers cost 2 MiB of RSS instead of 8.
CHUNK = 256 * 1024
#: bytes handed to the socket (sendfile), rate-limited and reported as progress at a time.
SEGMENT = 1024 * 1024
EMPTY_MD5 = hashlib.md5(b"").hexdigest()


class Cancelled(Exception):
    """Raised inside a worker when the transfer is being stopped (not an error by itself)."""


class LocalReadError(Exception):
    """Reading the local file failed (not an OSError, so urllib3 does not mistake it for the network)."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.exc = exc


@dataclass(frozen=True)
class PartTask:
    """One part to send: where its bytes are and the URL that accepts them."""

    number: int
    offset: int
    size: int
    url: str
    md5: str | None = None  # expected hex MD5 (content-bound manifests)
    # Send Content-MD5? Always for SigV4 (an unsigned header there is fine); for SigV2 only when
    # the URL signed it, because SigV2 signs the Content-MD5 header whether it is sent or not.
    content_md5: bool = True


@dataclass(frozen=True)
class PartDone:
    number: int
    size: int
    md5: str
    etag: str
    attempts: int


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter: attempt k waits between d/2 and d, d = min(cap, base * 2**(k-1))."""

    retries: int = 5
    base: float = 0.5
    cap: float = 20.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        d = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return d / 2 + self.rng.uniform(0, d / 2)


@dataclass
class Outcome:
    """What a run achieved: parts done, parts that failed after retries, and a fatal error if any."""

    done: list[PartDone] = field(default_factory=list)
    failed: dict[int, S3mpuError] = field(default_factory=dict)
    fatal: S3mpuError | None = None
    cancelled: bool = False
    bytes_sent: int = 0
    first_reply: Reply | None = None


class _Fatal(Exception):
    def __init__(self, err: S3mpuError) -> None:
        super().__init__(str(err))
        self.err = err


class _Exhausted(Exception):
    def __init__(self, err: S3mpuError) -> None:
        super().__init__(str(err))
        self.err = err


def md5_b64(hex_md5: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_md5)).decode("ascii")


def hash_range(fd: int, offset: int, size: int, buf: bytearray, cancel: threading.Event | None = None) -> str:
    """Hex MD5 of ``size`` bytes at ``offset`` of ``fd``, read through ``buf`` (no allocation per chunk)."""
    h = hashlib.md5()
    view = memoryview(buf)
    pos = 0
    while pos < size:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        want = min(len(buf), size - pos)
        try:
            n = os.preadv(fd, [view[:want]], offset + pos)
        except OSError as exc:
            raise LocalReadError(exc) from None
        if n <= 0:
            raise LocalReadError(OSError(f"file ended {size - pos} bytes early (was it truncated?)"))
        h.update(view[:n])
        pos += n
    return h.hexdigest()


class PartBody:
    """One part as a request body for urllib3: file segments at the part's offset, rate-limited, with progress.

    It yields :class:`~s3mpu.user.httpclient.FileSegment` items that our connection class sends
    with ``sendfile`` (the bytes never enter Python); progress is reported once a segment
    is on the socket.
    """

    def __init__(self, fd: int, offset: int, size: int, buf: bytearray, cancel: threading.Event,
                 limiter: TokenBucket | None, progress: ProgressSink, number: int, counter: Callable[[int], None]) -> None:
        self.fd, self.offset, self.size = fd, offset, size
        self.view = memoryview(buf)
        self.cancel = cancel
        self.limiter = limiter
        self.progress = progress
        self.number = number
        self.counter = counter
        self.sent = 0

    def _sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise Cancelled()

    def __iter__(self) -> Iterator[FileSegment]:
        step = SEGMENT  # the view only serves sockets that cannot sendfile (TLS), in pieces of its size
        while self.sent < self.size:
            if self.cancel.is_set():
                raise Cancelled()
            want = min(step, self.size - self.sent)
            if self.limiter is not None:
                self.limiter.acquire(want, sleep=self._sleep)
            yield FileSegment(self.fd, self.offset + self.sent, want, self.view)
            self.sent += want
            self.counter(want)
            self.progress.advance(want, self.number)


class Transfer:
    """Send a set of parts with ``jobs`` workers; see the module docstring for the why."""

    def __init__(self, fd: int, http: HttpClient, *, jobs: int = 8, retry: RetryPolicy | None = None,
                 limiter: TokenBucket | None = None, progress: ProgressSink | None = None,
                 on_done: Callable[[PartDone], None] | None = None, cancel: threading.Event | None = None,
                 max_failures: int | None = None, describe: Callable[[int], str] | None = None) -> None:
        self.fd = fd
        self.http = http
        self.jobs = max(1, jobs)
        self.retry = retry or RetryPolicy()
        self.limiter = limiter
        self.progress: ProgressSink = progress or NullProgress()
        self.on_done = on_done
        self.cancel = cancel or threading.Event()
        # Parts that exhaust their retries mean the link or server is bad: stop dispatching after a few.
        self.max_failures = max_failures if max_failures is not None else max(2, self.jobs)
        self.describe = describe or (lambda n: f"part {n}")
        self._lock = threading.Lock()
        self._bytes = 0
        self.outcome = Outcome()

    @property
    def bytes_sent(self) -> int:
        return self._bytes

    def _count(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    # -- one part ----------------------------------------------------------------------
    def send_part(self, task: PartTask, buf: bytearray) -> PartDone:
        """Hash, then send with retries. Raises _Fatal, _Exhausted or Cancelled."""
        try:
            md5 = hash_range(self.fd, task.offset, task.size, buf, self.cancel)
        except LocalReadError as exc:
            raise _Fatal(DataError(f"cannot read {self.describe(task.number)} from the file: {exc}",
                                   "Check the file is intact and readable, then re-run.")) from None
        if task.md5 and task.md5.lower() != md5:
            raise _Fatal(DataError(
                f"{self.describe(task.number)}: local MD5 {md5} differs from the manifest's {task.md5}; nothing sent",
                "The file changed since 's3mpu plan' ran; upload the planned file or ask for a new manifest."))
        headers = {"Content-Length": str(task.size)}
        if task.content_md5 or task.md5:
            headers["Content-MD5"] = md5_b64(md5)
        attempt = 0
        while True:
            attempt += 1
            self.progress.part_started(task.number, task.size)
            body = PartBody(self.fd, task.offset, task.size, buf, self.cancel, self.limiter, self.progress,
                            task.number, self._count)
            err: S3mpuError
            try:
                reply = self.http.request("PUT", task.url, body=body if task.size else b"", headers=headers)
            except Cancelled:
                self._rollback(task.number, body.sent)
                raise
            except (LocalReadError, ShortFileError) as exc:
                self._rollback(task.number, body.sent)
                raise _Fatal(DataError(f"cannot read {self.describe(task.number)} from the file: {exc}")) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                self._rollback(task.number, body.sent)
                err = TempFailError(f"{self.describe(task.number)}: network error ({_short(exc)})",
                                    "Check the network, then re-run the same command: it resumes.")
                can_retry = True
            else:
                if self.outcome.first_reply is None:
                    self.outcome.first_reply = reply
                if reply.status == 200 and reply.etag == md5:
                    self.progress.part_finished(task.number, True)
                    return PartDone(task.number, task.size, md5, reply.etag, attempt)
                self._rollback(task.number, body.sent)
                if reply.status == 200:
                    if reply.etag and self._changed_since(task, md5, buf):  # a server that does not check MD5
                        raise _Fatal(changed_in_flight(self.describe(task.number), "the server's ETag differs"))
                    err = DataError(f"{self.describe(task.number)}: server ETag {reply.etag or '(none)'} "
                                    f"is not the part's MD5 {md5}", "Re-run the same command to send it again.")
                    can_retry = True
                else:
                    code, msg = xml_error(reply.body)
                    err = part_refused(code, msg, task.number, self.describe(task.number)) \
                        or classify_http(reply.status, reply.body, self.describe(task.number))
                    can_retry = retryable(reply.status, code)
            self.progress.part_finished(task.number, False)
            if not can_retry:
                raise _Fatal(err)
            if attempt > self.retry.retries:
                raise _Exhausted(err)
            if self.cancel.wait(self.retry.delay(attempt)):
                raise Cancelled()

    def _changed_since(self, task: PartTask, md5: str, buf: bytearray) -> bool:
        """Whether the part's bytes now hash differently: the file was written to while it was sent."""
        try:
            return hash_range(self.fd, task.offset, task.size, buf, self.cancel) != md5
        except LocalReadError:
            return True

    def _rollback(self, number: int, sent: int) -> None:
        if sent:
            self._count(-sent)
            self.progress.advance(-sent, number)

    # -- the pool ----------------------------------------------------------------------
    def run(self, tasks: Sequence[PartTask], tick: Callable[[], None] | None = None,
            tick_interval: float = 0.5) -> Outcome:
        """Send ``tasks``; returns when all are done, failed, or the transfer was cancelled.

        The calling thread only waits (so Ctrl-C lands there): on KeyboardInterrupt the
        workers are cancelled, joined, and the interrupt is re-raised. ``tick`` runs about
        every ``tick_interval`` seconds in the calling thread (ETA checks, for instance).
        """
        q: queue.SimpleQueue[PartTask] = queue.SimpleQueue()
        for task in tasks:
            q.put(task)
        stop_dispatch = threading.Event()
        out = self.outcome

        def worker() -> None:
            buf = bytearray(CHUNK)
            while not self.cancel.is_set() and not stop_dispatch.is_set():
                try:
                    task = q.get_nowait()
                except queue.Empty:
                    return
                try:
                    done = self.send_part(task, buf)
                    if self.on_done is not None:
                        self.on_done(done)
                except Cancelled:
                    return
                except _Fatal as f:
                    with self._lock:
                        if out.fatal is None:
                            out.fatal = f.err
                    self.cancel.set()
                    return
                except _Exhausted as e:
                    with self._lock:
                        out.failed[task.number] = e.err
                        if len(out.failed) >= self.max_failures:
                            stop_dispatch.set()
                    continue
                except OSError as exc:  # the journal could not be written: stop, nothing is lost
                    with self._lock:
                        if out.fatal is None:
                            out.fatal = TempFailError(f"cannot write the resume journal: {exc}",
                                                      "Free some disk space, then re-run the same command.")
                    self.cancel.set()
                    return
                with self._lock:
                    out.done.append(done)

        threads = [threading.Thread(target=worker, name=f"s3mpu-part-{i}", daemon=True)
                   for i in range(min(self.jobs, max(1, len(tasks))))]
        for t in threads:
            t.start()
        try:
            next_tick = time.monotonic() + tick_interval
            for t in threads:
                while t.is_alive():
                    t.join(0.1)
                    if tick is not None and time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + tick_interval
                        tick()
        except BaseException:
            self.cancel.set()
            for t in threads:
                t.join(5.0)
            out.cancelled = True
            out.bytes_sent = self._bytes
            raise
        out.bytes_sent = self._bytes
        out.cancelled = self.cancel.is_set() and out.fatal is None
        return out


def part_refused(code: str, message: str, number: int, what: str) -> S3mpuError | None:
    """The errors a re-run cannot fix by sending the same part again, with what to do instead.

    - ``NotImplemented`` on a part PUT: the server (rclone) cannot replace a part it already
      holds with other bytes; retrying only waits (6 x 14 s before), so it is a data error.
    - ``BadDigest``: the bytes that arrived are not the ones hashed just before: the file is
      being written to while it is uploaded.
    """
    if code == "NotImplemented":
        return DataError(f"this server cannot replace part {number} with different bytes ({code}: {message[:160]})",
                         "Restore the original file (the one first uploaded) and re-run, "
                         "or ask the admin for a new manifest.")
    if code == "BadDigest":
        return changed_in_flight(what, "BadDigest")
    return None


def changed_in_flight(what: str, evidence: str) -> DataError:
    """The server received other bytes than the ones hashed a moment before: the file is being written to."""
    return DataError(f"{what}: the server received other bytes than the ones hashed ({evidence}): "
                     "the file changed while it was being sent",
                     "Make sure nothing writes to the file, then re-run the same command: it checks every "
                     "part against the server and sends again only those that differ.")


def _short(exc: BaseException) -> str:
    text = str(exc)
    reason = getattr(exc, "reason", None)
    if reason is not None:
        text = str(reason)
    text = text.split(": ", 1)[-1] if "HTTPConnection" in text else text
    return (text or type(exc).__name__)[:160]


def split(tasks: Sequence[PartTask], done: set[int]) -> list[PartTask]:
    """The tasks still to send, in part order (rclone buffers out-of-order parts in RAM)."""
    return [t for t in sorted(tasks, key=lambda t: t.number) if t.number not in done]


__all__ = ["CHUNK", "Cancelled", "PartBody", "PartDone", "PartTask", "RetryPolicy", "Transfer", "Outcome",
           "hash_range", "md5_b64", "split", "AccessDeniedError"]
