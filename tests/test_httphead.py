"""QuickResponse reads what http.client's own response reads, for any header block.

Each case feeds the same bytes to ``http.client.HTTPResponse`` and to
:class:`~s3mpu.user.httphead.QuickResponse` and compares everything the callers use: status,
reason, version, the headers (names, values, order, any-case lookups), body framing (length,
chunked, will_close) and the body itself. Hypothesis draws header blocks from printable and odd
characters (folded lines, spaces in names, missing colons, Latin-1), the shapes where the quick
path must hand over to the email parser. A real socket round trip is in ``test_httpclient.py``.
"""
from __future__ import annotations

import http.client
import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3mpu.user.httphead import MAX_HEADERS, QuickResponse, read_head


class _Sock:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, _mode: str) -> io.BytesIO:
        return io.BytesIO(self.data)


def _read(cls: type[http.client.HTTPResponse], raw: bytes, method: str = "PUT") -> dict[str, Any]:
    r = cls(_Sock(raw), method=method)  # type: ignore[arg-type]
    try:
        r.begin()
    except Exception as exc:  # the two must fail alike too
        return {"error": type(exc)}
    out = {"status": r.status, "reason": r.reason, "version": r.version, "chunked": r.chunked,
           "length": r.length, "will_close": r.will_close, "items": list(r.headers.items()),
           "defects": len(r.headers.defects), "type": type(r.headers)}
    for name in ("etag", "ETAG", "content-length", "date", "x-amz-request-id", "connection", "nope"):
        out[f"get {name}"] = r.headers.get(name, "-")
    try:
        out["body"] = r.read()
    except Exception as exc:
        out["body"] = type(exc)
    return out


def _same(raw: bytes, method: str = "PUT") -> dict[str, Any]:
    want = _read(http.client.HTTPResponse, raw, method)
    got = _read(QuickResponse, raw, method)
    assert got == want
    return got


S3_ANSWER = (b"HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: 0\r\n"
             b"Etag: \"0123456789abcdef0123456789abcdef\"\r\nLast-Modified: Sat, 05 Dec 2026 15:00:00 GMT\r\n"
             b"Server: rclone/v1.70\r\nX-Amz-Request-Id: 18512345ABCDEF\r\nDate: Sat, 05 Dec 2026 15:00:00 GMT\r\n\r\n")


def test_an_s3_put_answer_reads_the_same() -> None:
    got = _same(S3_ANSWER)
    assert got["status"] == 200 and got["get ETAG"] == '"0123456789abcdef0123456789abcdef"'
    assert got["length"] == 0 and not got["will_close"] and got["type"] is http.client.HTTPMessage


@pytest.mark.parametrize("raw, method", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "GET"),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "GET"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET"),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok", "GET"),
    (b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil the end", "GET"),  # no length: read to the close
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD"),
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", "PUT"),
    (b"HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "PUT"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\nConnection: close\r\n\r\nabcd", "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nabc", "GET"),
    (b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 13\r\n\r\n<Error></Error>", "PUT"),
    (b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx", "GET"),  # bare LF line ends
    (b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n two\r\nContent-Length: 0\r\n\r\n", "PUT"),  # obs-fold: email parser
    (b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n", "PUT"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n", "PUT"),
    (b"HTTP/1.1 200 OK\r\nEtag: \"a\"\r\nETag: \"b\"\r\nContent-Length: 0\r\n\r\n", "PUT"),  # the first wins
    (b"HTTP/1.1 200 OK\r\nX-Spaces:   \t padded \t \r\nX-Empty:\r\nContent-Length: 0\r\n\r\n", "PUT"),
    (b"HTTP/1.1 200 OK\r\nX-Latin: caf\xe9\r\nContent-Length: 0\r\n\r\n", "PUT"),
    (b"HTTP/2.0 200 OK\r\n\r\n", "GET"),
    (b"garbage\r\n\r\n", "GET"),
    (b"", "GET"),
])
def test_edge_answers_read_the_same(raw: bytes, method: str) -> None:
    _same(raw, method)


def test_bounds_are_http_clients() -> None:
    many = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n"
    long = b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n"
    for raw in (many, long):
        assert _same(raw)["error"] in (http.client.HTTPException, http.client.LineTooLong)
    with pytest.raises(http.client.LineTooLong):
        read_head(io.BytesIO(b"X: " + b"b" * 70000 + b"\r\n\r\n"))


_NAMES = st.one_of(st.sampled_from(["Etag", "ETag", "Content-Length", "Connection", "Date", "x-amz-id-2",
                                    "Transfer-Encoding", "Keep-Alive"]),
                   st.text(st.characters(min_codepoint=32, max_codepoint=255), min_size=0, max_size=12))
_VALUES = st.one_of(st.sampled_from(["0", "5", "close", "keep-alive", "chunked", '"abc"', " x ", "\t"]),
                    st.text(st.characters(min_codepoint=9, max_codepoint=255, blacklist_characters="\r\n"),
                            max_size=20))
_LINES = st.lists(st.one_of(st.tuples(_NAMES, _VALUES).map(lambda nv: f"{nv[0]}:{nv[1]}"),
                            st.text(st.characters(min_codepoint=9, max_codepoint=255,
                                                  blacklist_characters="\r\n"), max_size=20)),
                  max_size=12)


@settings(max_examples=300, deadline=None)
@given(lines=_LINES, status=st.sampled_from([200, 204, 304, 400, 500]), body=st.binary(max_size=8),
       method=st.sampled_from(["GET", "PUT", "HEAD"]), eol=st.sampled_from(["\r\n", "\n"]))
def test_any_header_block_reads_the_same(lines: list[str], status: int, body: bytes, method: str, eol: str) -> None:
    head = f"HTTP/1.1 {status} Whatever{eol}" + "".join(line + eol for line in lines if line.strip()) + eol
    _same(head.encode("iso-8859-1") + body, method)
