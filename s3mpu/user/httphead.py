"""A response's status line and headers read without the ``email`` package's parser.

Why: http.client hands every response's header block to ``email.parser``, a general MIME
parser, then answers each ``get`` by scanning the parsed list. For a bundle's 16 KiB PUTs that was
the largest single cost of the client after the request itself: ~25 us of the ~30 us spent on an
answer of a dozen headers, all of it Python holding the GIL the other workers wait for (2,000 x 16
KiB to rclone serve s3, 7 rounds: client CPU 0.68 -> 0.61 s, wall 0.79 -> 0.73 s). S3 answers with a
handful of plain ``Name: value`` lines, which need no MIME machinery; anything else (a folded
line, a name with a space, a line without a colon) is left to the email parser, as before.

What stays the standard library's: the status line (``_read_status``), ``_check_close``, reading
the body, and the headers object itself, a real :class:`http.client.HTTPMessage` (urllib3 checks
that type, and ``get`` keeps its any-case, first-value answers).
"""
from __future__ import annotations

import email.parser
import http.client
import re
from typing import BinaryIO

#: http.client's own bounds on a header block (its private ``_MAXLINE`` and ``_MAXHEADERS``)
MAX_LINE = 65536
MAX_HEADERS = 100
#: a field name as the email parser reads one: printable ASCII without the colon
_NAME = re.compile(r"[!-9;-~]+\Z")
_END = (b"\r\n", b"\n", b"")


def read_head(fp: BinaryIO) -> http.client.HTTPMessage:
    """The header block at ``fp`` (after the status line), as ``http.client.parse_headers`` gives it."""
    lines: list[bytes] = []
    while True:
        line = fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in _END:
            break
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
    msg = http.client.HTTPMessage()
    for line in lines:
        name, sep, value = line.decode("iso-8859-1").partition(":")
        if not sep or _NAME.match(name) is None:  # folded, odd or malformed: the email parser decides
            return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(  # type: ignore[return-value]
                b"".join(lines).decode("iso-8859-1"))
        msg.set_raw(name, value.lstrip(" \t").rstrip("\r\n"))  # as the email parser's compat32 policy stores it
    return msg


class QuickResponse(http.client.HTTPResponse):
    """http.client's response with :func:`read_head` for the header block; the rest is unchanged."""

    def begin(self) -> None:
        # CPython's HTTPResponse.begin (3.10 to 3.13 alike), but for the one line that parses the headers
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            read_head(self.fp)  # a 100 Continue's headers are skipped
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = read_head(self.fp)
        tr_enc = self.headers.get("transfer-encoding")
        self.chunked = bool(tr_enc and tr_enc.lower() == "chunked")
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200 \
                or self._method == "HEAD":  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


__all__ = ["MAX_HEADERS", "MAX_LINE", "QuickResponse", "read_head"]
