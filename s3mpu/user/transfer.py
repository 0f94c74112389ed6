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
- Hashing is the CPU-bound step, so at most one part per core is hashed at a time, and a worker
  takes its next part only once it holds a hashing slot. Parts are then hashed one after another
  in part order instead of eight at once: the first byte leaves after one part's hash rather
  than after all eight, servers that write parts in order (rclone) get them in order, and the
  threads do not fight over two cores. The other workers are sending meanwhile.
- Parts, their hashing and their request bodies live in :mod:`s3mpu.user.parts`; policy (which
  parts, journal, completion) in :mod:`s3mpu.user.upload`; this module only
  moves bytes and reports facts through callbacks and a :class:`~s3mpu.user.progress.ProgressSink`.
"""
from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import urllib3

from s3mpu.errors import AccessDeniedError, DataError, S3mpuError, TempFailError
from s3mpu.user.httpclient import HttpClient, ShortFileError
from s3mpu.user.progress import NullProgress, ProgressSink
from s3mpu.user.ratelimit import TokenBucket
from s3mpu.user.window import Window
from s3mpu.s3errors import classify_http, retryable, throttled, xml_error
from s3mpu.user.parts import (CHUNK, SEGMENT, Cancelled, LocalReadError, Outcome, PartBody, PartDone,
                              PartTask, RetryPolicy, changed_in_flight, hash_range, md5_b64, part_refused, split)


class _Fatal(Exception):
    def __init__(self, err: S3mpuError) -> None:
        super().__init__(str(err))
        self.err = err
        self.task: PartTask | None = None  # the task it arose from, when known before sending


class _Exhausted(Exception):
    def __init__(self, err: S3mpuError) -> None:
        super().__init__(str(err))
        self.err = err


class Transfer:
    """Send a set of parts with ``jobs`` workers; see the module docstring for the why."""

    def __init__(self, fd: int, http: HttpClient, *, jobs: int = 8, retry: RetryPolicy | None = None,
                 limiter: TokenBucket | None = None, progress: ProgressSink | None = None,
                 on_done: Callable[[PartDone], None] | None = None, cancel: threading.Event | None = None,
                 max_failures: int | None = None, describe: Callable[[int], str] | None = None,
                 on_release: Callable[[PartTask], None] | None = None, hash_slots: int | None = None,
                 on_failed: Callable[[PartTask, S3mpuError], None] | None = None,
                 local_errors: tuple[type[S3mpuError], ...] = (), queue_bound: int | None = None,
                 chunk_buffers: bool | None = None, hash_in_order: bool = True, window: Window | None = None) -> None:
        self.fd = fd
        #: a bundle's: how many workers send at once, from the round trips of its in-memory requests
        self.window = window
        #: False: a worker takes its task first and waits for a hashing slot only if the task needs
        #: hashing (a bundle's small files come hashed by their reader; its big parts need no order)
        self.hash_in_order = hash_in_order
        #: a bundle's tasks are many objects: an error of one of these types fails that task only
        #: (``on_failed`` hears of it), not the whole transfer
        self.on_failed = on_failed
        self.local_errors = local_errors
        self.queue_bound = queue_bound  # tasks handed out ahead of the workers (an iterator's), None: unbounded
        #: True: a worker's CHUNK buffer is made when a task first reads a file (a bundle's many workers);
        #: else every worker of a list of parts has one from the start, none of a stream's
        self.chunk_buffers = chunk_buffers
        self.on_release = on_release
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
        #: parts hashed at once (see the module doc); the other workers are sending meanwhile
        self.hash_slots = max(1, min(self.jobs, hash_slots or _cores()))

    @property
    def bytes_sent(self) -> int:
        return self._bytes

    def _what(self, task: PartTask) -> str:
        return task.label or self.describe(task.number)

    def _fd(self, task: PartTask) -> int:
        return self.fd if task.fd is None else task.fd

    def _count(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    # -- one part ----------------------------------------------------------------------
    def send_part(self, task: PartTask, buf: bytearray) -> PartDone:
        """Hash, then send with retries. Raises _Fatal, _Exhausted or Cancelled."""
        return self.send_hashed(task, self.digest(task, buf), buf)

    def digest(self, task: PartTask, buf: bytearray) -> str:
        """The part's MD5 (read from the file, or of its buffer), checked against a plan's. Raises _Fatal."""
        if task.data_md5 is not None:
            md5 = task.data_md5
        elif task.data is not None:
            md5 = hashlib.md5(task.data).hexdigest()  # releases the GIL for large buffers
        else:
            try:
                md5 = hash_range(self._fd(task), task.offset, task.size, buf, self.cancel)
            except LocalReadError as exc:
                raise _Fatal(DataError(f"cannot read {self._what(task)} from the file: {exc}",
                                       "Check the file is intact and readable, then re-run.")) from None
        if task.md5 and task.md5.lower() != md5:
            raise _Fatal(DataError(
                f"{self._what(task)}: local MD5 {md5} differs from the manifest's {task.md5}; nothing sent",
                "The file changed since 's3mpu plan' ran; upload the planned file or ask for a new manifest."))
        return md5

    def send_hashed(self, task: PartTask, md5: str, buf: bytearray) -> PartDone:
        """Send a part whose MD5 is known, with retries. Raises _Fatal, _Exhausted or Cancelled."""
        if task.held_md5 is not None and task.held_md5 == md5:
            self.progress.part_finished(task.number, True)
            return PartDone(task.number, task.size, md5, md5, 0)  # the server holds these very bytes
        headers = {**dict(task.headers), "Content-Length": str(task.size)}
        if task.content_md5 or task.md5:
            headers["Content-MD5"] = md5_b64(md5)
        attempt = 0
        while True:
            attempt += 1
            self.progress.part_started(task.number, task.size)
            if task.data is not None and task.size <= SEGMENT and self.limiter is None:
                body: PartBody | _Whole = _Whole(task.data, self.cancel)
            else:
                body = PartBody(self._fd(task), task.offset, task.size, buf, self.cancel, self.limiter, self.progress,
                                task.number, self._count, task.data)
            err: S3mpuError
            slow_down = False  # the server asked for it: the full backoff from the first retry
            try:
                reply = self.http.request("PUT", task.url, body=body.whole() if type(body) is _Whole else body
                                          if task.size else b"", headers=headers)
            except Cancelled:
                self._rollback(task.number, body.sent)
                raise
            except (LocalReadError, ShortFileError) as exc:
                self._rollback(task.number, body.sent)
                raise _Fatal(DataError(f"cannot read {self._what(task)} from the file: {exc}")) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                self._rollback(task.number, body.sent)
                err = TempFailError(f"{self._what(task)}: network error ({_short(exc)})",
                                    "Check the network, then re-run the same command: it resumes.")
                can_retry = True
            else:
                if self.outcome.first_reply is None:
                    self.outcome.first_reply = reply
                etag = reply.etag
                if reply.status == 200 and etag == md5:
                    if type(body) is _Whole:
                        self._count(task.size)
                        self.progress.advance(task.size, task.number)
                    self.progress.part_finished(task.number, True)
                    return PartDone(task.number, task.size, md5, etag, attempt)
                self._rollback(task.number, body.sent)
                if reply.status == 200:
                    if etag and self._changed_since(task, md5, buf):  # a server that does not check MD5
                        raise _Fatal(changed_in_flight(self._what(task), "the server's ETag differs"))
                    err = DataError(f"{self._what(task)}: server ETag {etag or '(none)'} "
                                    f"is not the part's MD5 {md5}", "Re-run the same command to send it again.")
                    can_retry = True
                else:
                    code, msg = xml_error(reply.body)
                    err = part_refused(code, msg, task.number, self._what(task)) \
                        or classify_http(reply.status, reply.body, self._what(task))
                    can_retry = retryable(reply.status, code)
                    slow_down = throttled(reply.status, code)
            self.progress.part_finished(task.number, False)
            if not can_retry:
                raise _Fatal(err)
            if attempt > self.retry.retries:
                raise _Exhausted(err)
            if self.cancel.wait(self.retry.delay(attempt, slow_down)):
                raise Cancelled()

    def _release(self, task: PartTask) -> None:
        """The engine is done with ``task`` (sent, failed or dropped): its buffer may be reused."""
        if self.on_release is not None:
            self.on_release(task)

    def _changed_since(self, task: PartTask, md5: str, buf: bytearray) -> bool:
        """Whether the part's bytes now hash differently: the file was written to while it was sent."""
        if task.data is not None:
            return False  # a buffered part (a stream's) cannot change under us
        try:
            return hash_range(self._fd(task), task.offset, task.size, buf, self.cancel) != md5
        except LocalReadError:
            return True

    def _rollback(self, number: int, sent: int) -> None:
        if sent:
            self._count(-sent)
            self.progress.advance(-sent, number)

    # -- the pool ----------------------------------------------------------------------
    def run(self, tasks: Sequence[PartTask] | Iterator[PartTask], tick: Callable[[], None] | None = None,
            tick_interval: float = 0.5) -> Outcome:
        """Send ``tasks``; returns when all are done, failed, or the transfer was cancelled.

        The calling thread only waits (so Ctrl-C lands there): on KeyboardInterrupt the
        workers are cancelled, joined, and the interrupt is re-raised. ``tick`` runs about
        every ``tick_interval`` seconds in the calling thread (ETA checks, for instance).
        ``tasks`` may be an iterator (a stream's parts, produced as they are read): a feeder
        thread hands them to the workers as they come; an :class:`S3mpuError` raised by the
        iterator ends the transfer with that error once the parts already handed out have
        landed (they are good parts a re-run can skip).
        """
        streaming = not isinstance(tasks, Sequence)
        q: queue.SimpleQueue[PartTask | None] | queue.Queue[PartTask | None] = \
            queue.Queue(self.queue_bound) if streaming and self.queue_bound else queue.SimpleQueue()
        hashing = threading.Semaphore(self.hash_slots)
        stop_dispatch = threading.Event()
        out = self.outcome

        def fatal(err: S3mpuError) -> None:
            with self._lock:
                if out.fatal is None:
                    out.fatal = err
            self.cancel.set()

        def hand_out(item: PartTask | None) -> bool:
            """Queue ``item``, waiting while a bounded queue is full; False once the transfer stops."""
            while True:
                try:
                    q.put(item, timeout=0.1)  # type: ignore[call-arg]
                    return True
                except queue.Full:
                    if self.cancel.is_set() or stop_dispatch.is_set():
                        return False

        def feeder() -> None:
            try:
                for item in tasks:
                    if self.cancel.is_set() or stop_dispatch.is_set() or not hand_out(item):
                        self._release(item)
                        break
            except Cancelled:
                pass
            except S3mpuError as exc:  # the stream is wrong: stop reading, but let the parts in flight land
                with self._lock:
                    if out.fatal is None:
                        out.fatal = exc
            finally:
                for _ in range(self.jobs):
                    if not hand_out(None):
                        break
                if self.window is not None:
                    self.window.open()  # the parked workers take their None too

        def next_task() -> PartTask | None:
            if not streaming:
                try:
                    return q.get_nowait()
                except queue.Empty:
                    return None
            while not self.cancel.is_set():
                try:
                    return q.get(timeout=0.1)
                except queue.Empty:
                    continue
            return None

        def take_and_hash(bufs: list[bytearray]) -> tuple[PartTask, str] | None:
            """The next part and its MD5, hashed while holding one of the hashing slots.

            ``bufs[0]`` is the worker's buffer, given its CHUNK only once a task reads a file
            (``chunk_buffers``): a bundle's workers sending small in-memory files never need one.
            """
            task = None
            if not self.hash_in_order:
                task = next_task()
                if task is None:
                    return None
                if task.data_md5 is not None:  # hashed by its reader: no slot needed
                    try:
                        return task, self.digest(task, bufs[0])
                    except _Fatal as f:
                        f.task = task
                        self._release(task)
                        raise
            while not hashing.acquire(timeout=0.1):
                if self.cancel.is_set() or stop_dispatch.is_set():
                    if task is not None:
                        self._release(task)
                    return None
            try:
                if task is None:
                    task = next_task()  # taken only once a slot is held: parts are hashed in part order
                if task is None:
                    return None
                if task.data is None and len(bufs[0]) < CHUNK:
                    bufs[0] = bytearray(CHUNK)
                try:
                    return task, self.digest(task, bufs[0])
                except _Fatal as f:
                    f.task = task
                    raise
            except BaseException:
                if task is not None:
                    self._release(task)
                raise
            finally:
                hashing.release()

        def failed_here(task: PartTask, err: S3mpuError) -> bool:
            """An error that fails only ``task`` (a bundle's object), reported to ``on_failed``."""
            if self.on_failed is None or not isinstance(err, self.local_errors):
                return False
            with self._lock:
                out.failed[task.number] = err
            self.on_failed(task, err)
            return True

        def stopped() -> bool:
            return self.cancel.is_set() or stop_dispatch.is_set()

        def worker(index: int) -> None:
            chunked = not streaming and not self.chunk_buffers  # a stream's parts are in memory already
            bufs = [bytearray(CHUNK if chunked else 0)]
            window = self.window
            while not self.cancel.is_set() and not stop_dispatch.is_set():
                if window is not None and index >= window.limit:
                    window.wait_turn(index, stopped)
                    continue
                try:
                    taken = take_and_hash(bufs)
                except Cancelled:
                    return
                except _Fatal as f:
                    if f.task is not None and failed_here(f.task, f.err):
                        continue
                    fatal(f.err)
                    return
                if taken is None:
                    return
                task, md5 = taken
                try:
                    sent_at = time.monotonic()
                    done = self.send_hashed(task, md5, bufs[0])
                    if window is not None and task.data is not None:
                        window.answered(time.monotonic() - sent_at)
                    if self.on_done is not None:
                        self.on_done(done)
                except Cancelled:
                    return
                except _Fatal as f:
                    if failed_here(task, f.err):
                        continue
                    fatal(f.err)
                    return
                except _Exhausted as e:
                    with self._lock:
                        out.failed[task.number] = e.err
                        if len(out.failed) >= self.max_failures:
                            stop_dispatch.set()
                    if self.on_failed is not None:
                        self.on_failed(task, e.err)
                    continue
                except OSError as exc:  # the journal could not be written: stop, nothing is lost
                    fatal(TempFailError(f"cannot write the resume journal: {exc}",
                                        "Free some disk space, then re-run the same command."))
                    return
                finally:
                    self._release(task)
                with self._lock:
                    out.done.append(done)

        def guarded(index: int) -> None:
            """A worker whose unexpected error (a bug) stops the transfer instead of only its thread.

            Why: a worker that dies silently leaves a bounded queue full and the feeder waiting on
            it for good; the run must end, with the error named, and a re-run resume.
            """
            try:
                worker(index)
            except Exception as exc:  # noqa: BLE001 - reported as the transfer's error, not lost
                fatal(S3mpuError(f"internal error in s3mpu ({type(exc).__name__}: {_short(exc)})",
                                 "Re-run the same command: it resumes. Please report this error."))

        if streaming:  # the reader is joined last, and not at all once stopped: it may wait on a slow producer
            n_workers = self.jobs
            reader = [threading.Thread(target=feeder, name="s3mpu-reader", daemon=True)]
        else:
            for task in tasks:
                q.put(task)
            n_workers = min(self.jobs, max(1, len(tasks)))  # type: ignore[arg-type]
            reader = []
        threads = [threading.Thread(target=guarded, args=(i,), name=f"s3mpu-part-{i}", daemon=True)
                   for i in range(n_workers)]
        for t in reader + threads:
            t.start()
        try:
            next_tick = time.monotonic() + tick_interval
            for t in threads + reader:
                while t.is_alive() and not (t in reader and (self.cancel.is_set() or stop_dispatch.is_set())):
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


class _Whole:
    """A small in-memory body sent in one piece (see :meth:`HttpClient._exchange`); progress counts it once answered."""

    __slots__ = ("data", "cancel", "sent")

    def __init__(self, data: memoryview, cancel: threading.Event) -> None:
        self.data, self.cancel, self.sent = data, cancel, 0

    def whole(self) -> bytes:
        if self.cancel.is_set():
            raise Cancelled()
        obj = self.data.obj
        return obj if type(obj) is bytes and len(obj) == self.data.nbytes else bytes(self.data)


def _cores() -> int:
    """CPUs this process may run on: hashing more parts at once than that only interleaves them."""
    try:
        return max(2, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(2, os.cpu_count() or 2)


def _short(exc: BaseException) -> str:
    text = str(exc)
    reason = getattr(exc, "reason", None)
    if reason is not None:
        text = str(reason)
    text = text.split(": ", 1)[-1] if "HTTPConnection" in text else text
    return (text or type(exc).__name__)[:160]


__all__ = ["CHUNK", "Cancelled", "PartBody", "PartDone", "PartTask", "RetryPolicy", "Transfer", "Outcome",
           "hash_range", "md5_b64", "split", "AccessDeniedError"]
