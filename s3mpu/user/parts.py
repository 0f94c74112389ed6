"""Parts as the transfer engine sees them: what to send, what came back, how to read and hash it.

Split from :mod:`s3mpu.user.transfer` so the engine module holds only the worker pool: these are
the plain data types (task, result, retry policy, outcome), the reading and hashing of a part's
bytes through a reusable buffer, the request body that streams a part with ``sendfile``, and the
server answers that no retry can fix.
"""
from __future__ import annotations

import base64
import hashlib
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from s3mpu.compat import pread_into
from s3mpu.errors import DataError, S3mpuError
from s3mpu.user.httpclient import FileSegment, Reply
from s3mpu.user.progress import ProgressSink
from s3mpu.user.ratelimit import TokenBucket

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
    #: the part's bytes when a source buffered them (a stream); None: read them from the file at ``offset``
    data: memoryview | None = field(default=None, compare=False, repr=False)
    #: the MD5 the server already holds at this number with this size: equal bytes are not sent again
    held_md5: str | None = None
    #: the file to read (a bundle's tasks come from many files); None: the transfer's own descriptor
    fd: int | None = field(default=None, compare=False)
    #: headers the URL signed that the request must carry (a bundle's single PUTs: Content-Type, ...)
    headers: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    #: what messages call this task (a bundle's file name); None: "part N"
    label: str | None = field(default=None, compare=False)
    #: the hex MD5 of ``data``, when whoever read the bytes hashed them already (a bundle's small file)
    data_md5: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PartDone:
    number: int
    size: int
    md5: str
    etag: str
    attempts: int  # 0: not sent, the server already held these bytes (``PartTask.held_md5``)


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter: attempt k waits between d/2 and d, d = min(cap, base * 2**(k-1)).

    The first retry of a failure that is not throttling (a 500, a reset connection, a wrong ETag)
    waits a tenth of that, as aws-sdk-go (s5cmd) does: a server's one-off error - ``rclone serve
    s3`` answers about one 2,000-file put in seven with a 500 for one small PUT - costs ~50 ms,
    not half a second with every other request of the bundle done. Throttling (503, 429, SlowDown)
    keeps the full delay, and later retries the exponential schedule, so the time retries span is
    about the same.
    """

    retries: int = 5
    base: float = 0.5
    cap: float = 20.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, throttled: bool = True) -> float:
        d = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        if attempt <= 1 and not throttled:
            d /= 10
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
            n = pread_into(fd, view[:want], offset + pos)
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
    is on the socket. A part buffered in memory (``data``, a stream's part) is yielded as
    slices of that buffer instead (no copy).
    """

    def __init__(self, fd: int, offset: int, size: int, buf: bytearray, cancel: threading.Event,
                 limiter: TokenBucket | None, progress: ProgressSink, number: int, counter: Callable[[int], None],
                 data: memoryview | None = None) -> None:
        self.fd, self.offset, self.size = fd, offset, size
        self.data = data
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

    def __iter__(self) -> Iterator[FileSegment | memoryview]:
        step = SEGMENT  # the view only serves sockets that cannot sendfile (TLS), in pieces of its size
        while self.sent < self.size:
            if self.cancel.is_set():
                raise Cancelled()
            want = min(step, self.size - self.sent)
            if self.limiter is not None:
                self.limiter.acquire(want, sleep=self._sleep)
            if self.data is not None:
                yield self.data[self.sent:self.sent + want]
            else:
                yield FileSegment(self.fd, self.offset + self.sent, want, self.view)
            self.sent += want
            self.counter(want)
            self.progress.advance(want, self.number)


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


def split(tasks: Sequence[PartTask], done: set[int]) -> list[PartTask]:
    """The tasks still to send, in part order (rclone buffers out-of-order parts in RAM)."""
    return [t for t in sorted(tasks, key=lambda t: t.number) if t.number not in done]


__all__ = ["CHUNK", "SEGMENT", "EMPTY_MD5", "Cancelled", "LocalReadError", "PartTask", "PartDone", "RetryPolicy",
           "Outcome", "md5_b64", "hash_range", "PartBody", "part_refused", "changed_in_flight", "split"]
