"""FileSegment: part bytes go from the file to the socket by sendfile (plain TCP) or preadv+sendall (TLS and others).

Real sockets (socketpair) and a real file; the reader thread checks the exact bytes arrive.
"""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from s3mpu.user.httpclient import FileSegment


class _NotPlain(socket.socket):
    """A real socket whose type is not ``socket.socket`` (as ssl.SSLSocket): takes the fallback path."""


def _drain(sock: socket.socket, out: bytearray) -> threading.Thread:
    def run() -> None:
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return
            out.extend(chunk)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _send(plain: bool, fd: int, offset: int, count: int, buf_size: int) -> tuple[int, bytes]:
    """Send one FileSegment over a real socketpair (plain, or a socket subclass as TLS is); what arrived."""
    a, b = socket.socketpair()
    if not plain:
        a = _NotPlain(a.family, a.type, a.proto, fileno=a.detach())
    a.settimeout(10)
    got = bytearray()
    t = _drain(b, got)
    sent = FileSegment(fd, offset, count, memoryview(bytearray(buf_size))).send_to(a)
    a.close()
    t.join(10)
    b.close()
    return sent, bytes(got)


@pytest.fixture
def datafile(tmp_path: Path) -> tuple[int, bytes]:
    data = os.urandom(3 * 1024 * 1024 + 123)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


@pytest.mark.parametrize("plain", [True, False], ids=["sendfile", "fallback"])
def test_segment_sends_exact_range(datafile: tuple[int, bytes], plain: bool) -> None:
    fd, data = datafile
    offset, count = 1024 * 1024 + 7, 2 * 1024 * 1024 + 5
    sent, got = _send(plain, fd, offset, count, 256 * 1024)
    assert sent == count
    assert got == data[offset:offset + count]


@pytest.mark.parametrize("plain", [True, False], ids=["sendfile", "fallback"])
def test_segment_past_end_of_file_reports_short(datafile: tuple[int, bytes], plain: bool) -> None:
    fd, data = datafile
    sent, got = _send(plain, fd, len(data) - 100, 1000, 4096)
    assert sent == 100 and got == data[-100:]


def test_sendfile_stall_raises_timeout(datafile: tuple[int, bytes]) -> None:
    fd, _ = datafile
    a, b = socket.socketpair()  # nobody reads b: the send buffer fills, then the timeout fires
    a.settimeout(0.2)
    with pytest.raises(TimeoutError):
        FileSegment(fd, 0, 3 * 1024 * 1024, memoryview(bytearray(4096))).send_to(a)
    a.close()
    b.close()


def test_file_without_sendfile_support_falls_back_to_copying() -> None:
    """Some files refuse sendfile (EINVAL: /proc/self/environ here, some FUSE mounts): copy them instead."""
    fd = os.open("/proc/self/environ", os.O_RDONLY)
    try:
        expected = os.pread(fd, 1 << 20, 0)
        assert expected, "the test needs a non-empty environment"
        a, b = socket.socketpair()
        a.settimeout(10)
        got = bytearray()
        t = _drain(b, got)
        sent = FileSegment(fd, 0, len(expected), memoryview(bytearray(64))).send_to(a)
        a.close()
        t.join(10)
        b.close()
        assert sent == len(expected) and bytes(got) == expected
    finally:
        os.close(fd)
