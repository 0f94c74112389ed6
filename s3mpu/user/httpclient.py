"""The user side's HTTP: presigned requests over a pool of keep-alive connections (urllib3).

Why not boto3 here: the user holds no credentials and only ever sends presigned requests,
and boto3 costs ~0.3 s of import and a lot of per-request overhead on the hot path. One
``PoolManager`` sized to the number of workers keeps one connection per worker alive;
urllib3's own retries are off because :mod:`s3mpu.user.transfer` owns the retry policy.
Timeouts are the stall detector: the connect timeout also bounds each socket write
(urllib3 sends the body under it), the read timeout bounds the wait for the answer.
"""
from __future__ import annotations

import errno
import http.client
import os
import select
import socket
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from s3mpu.compat import HAVE_SENDFILE, pread_into
from s3mpu.user.httphead import QuickResponse
from s3mpu.errors import S3mpuError
from s3mpu.s3errors import classify_http

#: bytes handed to each ``socket.send``: large enough to keep Python out of the way.
BLOCKSIZE = 1024 * 1024
USER_AGENT = "s3mpu"
#: seconds after an answer during which its connection is handed out again without urllib3's check
#: that the server has not closed it (a ``poll``: a system call, so a GIL handoff among a bundle's
#: workers, per small request). A server that closed it all the same costs one immediate replay of
#: the in-memory request on a new connection (:meth:`HttpClient._exchange`), as Go's client does;
#: servers close idle connections after seconds (Apache 5 s, nginx 75 s), not within one.
FRESH = 1.0


class FileSegment:
    """``count`` bytes of ``fd`` at ``offset``, as one item of a request body (see :class:`_SegmentSending`).

    Why: a part's bytes go from the page cache to the socket with ``sendfile`` (no copy
    through Python, GIL released); measured ~0.1 CPU s/GiB less than ``preadv`` +
    ``sendall`` on loopback. ``buf`` serves the fallback when the socket cannot sendfile (TLS).
    """

    __slots__ = ("fd", "offset", "count", "buf")

    def __init__(self, fd: int, offset: int, count: int, buf: memoryview) -> None:
        self.fd, self.offset, self.count, self.buf = fd, offset, count, buf

    def __bool__(self) -> bool:
        return self.count > 0

    def send_to(self, sock: Any) -> int:
        """Send the whole segment; returns the bytes the file gave (fewer means the file shrank)."""
        sent = 0
        if HAVE_SENDFILE and type(sock) is socket.socket:  # plain TCP: the kernel copies (sendfile); TLS objects are subclasses
            sent = _sendfile(sock, self.fd, self.offset, self.count)
            if sent >= 0:
                return sent
            sent = 0  # this file cannot be sendfile'd (some FUSE/network filesystems): copy instead
        while sent < self.count:
            want = min(self.count - sent, len(self.buf))
            got = pread_into(self.fd, self.buf[:want], self.offset + sent)
            if got <= 0:
                break
            sock.sendall(self.buf[:got])
            sent += got
        return sent


_NO_SENDFILE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP)


def _sendfile(sock: socket.socket, fd: int, offset: int, count: int) -> int:
    """``os.sendfile`` honouring the socket's timeout (a stall raises TimeoutError, an OSError propagates).

    Returns the bytes sent, or -1 when the file does not support sendfile (nothing was sent).

    Not ``socket.sendfile``: on an early error it falls back to seek()+read() on a file
    object, and the file's one descriptor is shared by every worker (offsets stay explicit).
    """
    timeout = sock.gettimeout()
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT)
    wait_ms = None if timeout is None else max(1, int(timeout * 1000))
    sent = 0
    while sent < count:
        if wait_ms is not None and not poller.poll(wait_ms):
            raise TimeoutError(f"sending stalled for {timeout:g} s")
        try:
            n = os.sendfile(sock.fileno(), fd, offset + sent, count - sent)
        except BlockingIOError:
            continue
        except OSError as exc:
            if sent == 0 and exc.errno in _NO_SENDFILE:
                return -1
            raise
        if n == 0:  # end of file
            break
        sent += n
    return sent


class ShortFileError(Exception):
    """The local file gave fewer bytes than a segment needs (truncated while uploading)."""


class _SegmentSending:
    """Connection mixin: a :class:`FileSegment` body item is sent with sendfile, anything else as usual;
    answers are read by :class:`~s3mpu.user.httphead.QuickResponse`.

    ``held`` (set by :meth:`HttpClient._exchange`): the header block is kept back and leaves with the
    small body that follows it, in one ``sendall`` instead of two.
    """

    held: bytes | None = None
    #: answers' headers are read without the email parser (see :mod:`s3mpu.user.httphead`)
    response_class: type[http.client.HTTPResponse] = QuickResponse
    #: until when the connection counts as alive without urllib3's poll at checkout (see :data:`FRESH`)
    fresh_until = 0.0

    @property
    def is_connected(self) -> bool:
        if self.fresh_until and self.sock is not None and time.monotonic() < self.fresh_until:  # type: ignore[attr-defined]
            return True
        return super().is_connected  # type: ignore[misc, no-any-return]

    def send(self, data: Any) -> None:
        held = self.held
        if held is not None:
            if not held:
                self.held = data  # the header block: wait for the body
                return
            self.held = None
            data = held + data
        if isinstance(data, FileSegment):
            if self.sock is None:  # type: ignore[attr-defined]
                self.connect()  # type: ignore[attr-defined]
            if data.send_to(self.sock) != data.count:  # type: ignore[attr-defined]
                raise ShortFileError(f"file ended before byte {data.offset + data.count} (was it truncated?)")
            return
        super().send(data)  # type: ignore[misc]


class _HTTPConnection(_SegmentSending, HTTPConnection):
    pass


class _HTTPSConnection(_SegmentSending, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class Headers(Protocol):
    """A response's headers, looked up by any case (all a :class:`Reply`'s readers need)."""

    def get(self, name: str, default: str, /) -> str: ...


@dataclass
class Reply:
    """A finished HTTP exchange: status, headers (looked up by any case) and the (small) body."""

    status: int
    headers: Headers  # urllib3's HTTPHeaderDict or http.client's message, as it came (not copied)
    body: bytes = b""

    @property
    def date(self) -> datetime | None:
        """The server's ``Date`` header (for clock-skew and expiry checks), if any."""
        value = self.headers.get("date", "")
        if not value:
            return None
        try:
            return parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None

    @property
    def etag(self) -> str:
        return self.headers.get("etag", "").strip().strip('"').lower()


_TIMEVAL = struct.Struct("@ll")


def _kernel_ok(sock: Any, seconds: float | None) -> bool:
    return seconds is not None and _KERNEL_TIMEOUTS and type(sock) is socket.socket  # TLS sockets are subclasses


_KERNEL_TIMEOUTS = os.name == "posix" and hasattr(socket, "SO_RCVTIMEO")


def _set_timeouts(sock: Any, seconds: float | None) -> None:
    """Make ``sock`` a blocking socket whose reads and writes the kernel stops after ``seconds``.

    Why: a socket with a Python timeout polls before every send and every receive, two more
    system calls (each a GIL handoff among the workers) per small request. The kernel's
    timeout ends a stalled call with EAGAIN instead (see :meth:`HttpClient._exchange`). Where the
    kernel cannot (TLS objects, not POSIX), the Python timeout stays.
    """
    if not _kernel_ok(sock, seconds):
        sock.settimeout(seconds)
        return
    assert seconds is not None
    tv = _TIMEVAL.pack(int(seconds), int((seconds % 1) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    sock.settimeout(None)


def _as_urllib3s(exc: BaseException) -> None:
    """Raise http.client's protocol errors (a garbled status line, too many or too long headers) as
    urllib3's ``ProtocolError``, as its ``urlopen`` does: the transfer retries those; left raw they
    were nobody's error. Anything else is left to the caller to re-raise."""
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, OSError):
        raise urllib3.exceptions.ProtocolError(f"connection broken: {exc!r}", exc) from exc


class HttpClient:
    """Presigned requests with pooled keep-alive connections, timeouts and no hidden retries."""

    def __init__(self, jobs: int = 8, connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 ca_bundle: str | None = None, proxy: str | None = None) -> None:
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        kw: dict[str, Any] = {"num_pools": 4, "maxsize": max(1, jobs), "block": False, "retries": False,
                              "timeout": self.timeout, "blocksize": BLOCKSIZE}
        if ca_bundle:
            kw["ca_certs"] = ca_bundle
        self.pool: urllib3.PoolManager = urllib3.ProxyManager(proxy, **kw) if proxy else urllib3.PoolManager(**kw)
        self.pool.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}  # FileSegment bodies
        self.direct = not proxy
        self._hosts: dict[str, Any] = {}  # "scheme://host:port" -> its connection pool

    def _host_pool(self, url: str) -> tuple[Any, str]:
        """The connection pool of ``url``'s host and the request target, parsing the URL once.

        Why not ``PoolManager.request``: it parses the URL, then the pool parses it again (see
        :meth:`request`): for a bundle's 16 KiB PUTs that was a tenth of the client's CPU.
        """
        scheme, sep, rest = url.partition("://")
        netloc, _, target = rest.partition("/")
        key = scheme + sep + netloc
        pool = self._hosts.get(key)
        if pool is None or pool.pool is None:  # new, or closed by the manager (more hosts than num_pools)
            pool = self._hosts[key] = self.pool.connection_from_url(url)
        return pool, "/" + target

    def request(self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        """Send one request and read the whole (small) answer. Network errors propagate as urllib3's."""
        h = {"User-Agent": USER_AGENT, **(headers or {})}
        if not self.direct:  # through a proxy: the manager sends the absolute URL
            r = self.pool.request(method, url, body=body, headers=h, preload_content=False, redirect=False,
                                  retries=False)
            try:
                data = r.read()
            finally:
                r.release_conn()
            return Reply(r.status, r.headers, data)
        pool, target = self._host_pool(url)
        if type(body) is bytes:
            return self._exchange(pool, method, target, body, h)
        # The pool's own steps without ``urlopen``'s (redirects and retries are off anyway): urlopen
        # re-checks the presigned URL's percent-encoding byte by byte in Python, ~70 us a request,
        # a quarter of a small file's HTTP cost. Checkout, timeouts, TLS and errors stay urllib3's.
        conn = pool._get_conn()
        if conn.fresh_until:  # handed out unchecked, but a streamed body cannot be replayed: check now
            conn.fresh_until = 0.0
            if not conn.is_connected:
                conn.close()  # reconnected when the request is sent, as urllib3's checkout does
        try:
            r = pool._make_request(conn, method, target, body=body, headers=h, retries=None, timeout=pool.timeout,
                                   preload_content=False)
            data = r.read()
        except BaseException as exc:
            conn.close()
            pool._put_conn(None)  # as urlopen does: the pool's slot is free, the broken connection is not kept
            _as_urllib3s(exc)
            raise
        pool._put_conn(conn)  # the next checkout drops it if the server closed it
        return Reply(r.status, r.headers, data)

    def _exchange(self, pool: Any, method: str, target: str, body: bytes, headers: dict[str, str]) -> Reply:
        """A request whose body is in memory (a bundle's small file), on urllib3's pooled connection.

        Why: urllib3's ``request``/``getresponse`` wrap http.client's own steps, which its connection
        class inherits; called directly they send the headers and the body in one ``send`` (urllib3
        sends them apart), leave the socket's timeout alone between requests (urllib3 sets it twice,
        an ``ioctl`` each) and skip re-wrapping the answer: measured 250 -> 190 us of CPU per 16 KiB
        PUT. Checkout, connecting and TLS stay urllib3's; its check that a kept connection was not
        closed by the server is skipped for one answered within :data:`FRESH` seconds, and a kept
        connection found closed all the same is replayed once on a new one (the body is in memory;
        a PUT of the same bytes is the same object). The one timeout (the read timeout) bounds both
        sending the small body and waiting for the answer.
        """
        conn = pool._get_conn()
        wait = self.timeout.read_timeout
        while True:
            reused = conn.sock is not None
            started = 0.0
            try:
                if conn.sock is None:
                    conn.timeout = self.timeout.connect_timeout
                    conn.connect()
                sock = conn.sock
                if sock.gettimeout() != (None if _kernel_ok(sock, wait) else wait):  # new, or used by urllib3's steps
                    _set_timeouts(sock, wait)
                conn.held = b"" if body else None
                started = time.monotonic()
                http.client.HTTPConnection.request(conn, method, target, body, headers)
                r = http.client.HTTPConnection.getresponse(conn)
                data = r.read()
            except BaseException as exc:
                conn.held = None
                conn.close()
                timed_out = bool(wait is not None and started and time.monotonic() - started >= wait * 0.99)
                if reused and not timed_out and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                    continue  # the server had closed the kept connection (see FRESH): once more on a new one
                pool._put_conn(None)  # as urlopen does: the slot is free, the broken connection is not kept
                if timed_out and isinstance(exc, (BlockingIOError, http.client.RemoteDisconnected)):
                    raise TimeoutError(f"no answer within {wait:g} s") from None  # the kernel's, seen as EAGAIN or EOF
                _as_urllib3s(exc)
                raise
            conn.fresh_until = time.monotonic() + FRESH
            pool._put_conn(conn)  # a connection the server closed (Connection: close) is reopened at checkout
            return Reply(r.status, r.headers, data)

    def close(self) -> None:
        self._hosts.clear()
        self.pool.clear()


# -- ListParts through a presigned URL -----------------------------------------------------
@dataclass
class ListedParts:
    """What ``ListParts`` told us: the parts, and whether the listing was cut short."""

    parts: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True
    date: datetime | None = None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_list_parts(xml: bytes) -> tuple[list[dict[str, Any]], bool, str | None]:
    """``(parts, truncated, next_marker)`` from a ListParts XML answer (namespace-agnostic)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise S3mpuError(f"ListParts answer is not XML ({exc})") from None
    parts: list[dict[str, Any]] = []
    truncated = False
    marker: str | None = None
    for child in root:
        name = _local(child.tag)
        if name == "Part":
            d = {_local(c.tag): (c.text or "") for c in child}
            try:
                parts.append({"number": int(d["PartNumber"]), "size": int(d.get("Size", "0")),
                              "etag": d.get("ETag", "").strip().strip('"').lower()})
            except (KeyError, ValueError):
                continue
        elif name == "IsTruncated":
            truncated = (child.text or "").strip().lower() == "true"
        elif name == "NextPartNumberMarker":
            marker = (child.text or "").strip() or None
    return parts, truncated, marker


def _with_marker(url: str, marker: str) -> str:
    s = urlsplit(url)
    q = parse_qsl(s.query, keep_blank_values=True) + [("part-number-marker", marker)]
    return urlunsplit((s.scheme, s.netloc, s.path, urlencode(q), ""))


def list_parts(http: HttpClient, url: str, what: str = "listing the uploaded parts",
               pages: Sequence[str] = ()) -> ListedParts:
    """All parts S3 holds, through the manifest's presigned ListParts URL(s).

    Pagination needs ``part-number-marker`` in the query, which is inside the signature: a
    marker appended afterwards is refused by servers that check signatures. So manifests of
    more than 1000 parts carry ``pages`` presigned at markers 1000, 2000, ...; when a page is
    truncated the next one is the presigned page with the largest marker not beyond S3's
    ``NextPartNumberMarker`` (parts listed twice are merged). Without one, the unsigned marker
    is tried, and a listing still cut short is reported as ``complete=False`` (the caller then
    simply re-uploads what it cannot see).
    """
    out = ListedParts()
    reply = http.request("GET", url)
    out.date = reply.date
    if reply.status != 200:
        raise classify_http(reply.status, reply.body, what)
    parts, truncated, marker = parse_list_parts(reply.body)
    by_number = {int(p["number"]): p for p in parts}
    signed = sorted(((_page_marker(u), u) for u in pages), key=lambda mu: mu[0])
    used: set[str] = set()
    for _ in range(20):
        if not (truncated and marker):
            break
        page = max((u for m, u in signed if m <= int(marker) and u not in used), key=_page_marker, default=None)
        if page is not None:
            used.add(page)
        reply = http.request("GET", page or _with_marker(url, marker))
        if reply.status != 200:
            break
        parts, truncated, next_marker = parse_list_parts(reply.body)
        by_number.update((int(p["number"]), p) for p in parts)
        if next_marker == marker and truncated:
            break  # no progress: stop rather than loop
        marker = next_marker
    out.parts.extend(by_number[n] for n in sorted(by_number))
    out.complete = not (truncated and marker)
    return out


def _page_marker(url: str) -> int:
    for k, v in parse_qsl(urlsplit(url).query):
        if k.lower() == "part-number-marker" and v.isdigit():
            return int(v)
    return 0
