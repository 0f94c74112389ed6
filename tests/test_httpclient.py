"""HttpClient's in-memory path (a bundle's small files), over real sockets on 127.0.0.1.

The path sends through urllib3's pooled connection with http.client's own steps and lets the
kernel time out a stalled socket: these tests pin what must not change with it - the bytes and
headers that arrive, reconnecting after ``Connection: close``, a stall ending as a timeout in
about the read timeout, a garbled answer as urllib3's error (which the transfer retries), and a
connection shared with urllib3's own steps (a big part's body) working both ways.
"""
from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from s3mpu.user.httpclient import HttpClient
from servers import LocalHTTPServer, QuietHandler, serving


class Recorder(LocalHTTPServer):
    def __init__(self) -> None:
        super().__init__(_Handler)
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.close_after = False
        self.close_silently = False  # close after answering, without saying so (no "Connection: close")
        self.drop = False  # close without answering at all
        self.connections: set[tuple[str, int]] = set()


class _Handler(QuietHandler):
    def do_PUT(self) -> None:  # noqa: N802
        srv: Recorder = self.server  # type: ignore[assignment]
        silently = srv.close_silently  # read before answering: the test changes it once it has the answer
        body = self.read_body()
        srv.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        srv.connections.add(self.client_address)
        if srv.drop:
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("ETag", f'"{hashlib.md5(body).hexdigest()}"')
        self.send_header("Content-Length", "0")
        if srv.close_after:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if silently:
            self.close_connection = True


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with serving(Recorder()) as s:
        yield s


@pytest.fixture
def raw_server() -> Iterator[tuple[socket.socket, list[bytes]]]:
    """A listening socket whose answers the test scripts: ``answers[i]`` goes back to connection i (b"": none)."""
    lsock = socket.create_server(("127.0.0.1", 0))
    answers: list[bytes] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        lsock.settimeout(0.05)
        i = 0
        while not stop.is_set():
            try:
                c, _ = lsock.accept()
            except (TimeoutError, OSError):
                continue
            held.append(c)
            c.recv(65536)
            if i < len(answers) and answers[i]:
                c.sendall(answers[i])
            i += 1

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield lsock, answers
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    lsock.close()


def test_a_small_body_arrives_whole_with_its_signed_headers(recorder: Recorder) -> None:
    http = HttpClient(jobs=2)
    body = bytes(range(256)) * 64 + b"tail"
    reply = http.request("PUT", f"{recorder.url}/b/k?X-Amz-Signature=abc%2Fdef", body=body,
                         headers={"Content-Length": str(len(body)), "Content-MD5": "x", "x-amz-meta-s3mpu-sha256": "y"})
    assert reply.status == 200 and reply.etag == hashlib.md5(body).hexdigest()
    assert reply.date is not None
    path, headers, got = recorder.seen[0]
    assert got == body and path == "/b/k?X-Amz-Signature=abc%2Fdef"  # the target exactly as presigned
    assert headers["content-md5"] == "x" and headers["x-amz-meta-s3mpu-sha256"] == "y"
    assert headers["content-length"] == str(len(body)) and headers["user-agent"] == "s3mpu"


def test_many_requests_share_one_kept_alive_connection_and_reconnect_after_close(recorder: Recorder) -> None:
    http = HttpClient(jobs=1)
    for i in range(5):
        assert http.request("PUT", f"{recorder.url}/k{i}", body=b"x" * i, headers={"Content-Length": str(i)}).status == 200
    assert len(recorder.connections) == 1
    recorder.close_after = True
    for i in range(3):  # the server closes after each answer: the next request opens a new connection
        assert http.request("PUT", f"{recorder.url}/c{i}", body=b"y", headers={"Content-Length": "1"}).status == 200
    assert len(recorder.connections) == 3  # c0 on the kept one, c1 and c2 each on a new one
    assert [p for p, _h, _b in recorder.seen] == [f"/k{i}" for i in range(5)] + [f"/c{i}" for i in range(3)]


def test_a_server_that_never_answers_times_out_in_about_the_read_timeout(
        raw_server: tuple[socket.socket, list[bytes]], recorder: Recorder) -> None:
    lsock, _answers = raw_server  # no answers: each connection is read, then left hanging
    http = HttpClient(jobs=1, connect_timeout=5, read_timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="no answer within 0.3 s"):
        http.request("PUT", f"http://127.0.0.1:{lsock.getsockname()[1]}/k", body=b"z" * 100,
                     headers={"Content-Length": "100"})
    assert 0.25 <= time.monotonic() - t0 < 3
    # the broken connection was not kept: the same client goes on working with a good server
    assert http.request("PUT", f"{recorder.url}/after", body=b"ok", headers={"Content-Length": "2"}).status == 200


def test_a_garbled_answer_is_urllib3s_protocol_error(raw_server: tuple[socket.socket, list[bytes]]) -> None:
    lsock, answers = raw_server
    answers.append(b"HELLO THERE\r\n\r\n")
    http = HttpClient(jobs=1, read_timeout=2)
    with pytest.raises(urllib3.exceptions.HTTPError):  # what the transfer retries as a network error
        http.request("PUT", f"http://127.0.0.1:{lsock.getsockname()[1]}/k", body=b"z", headers={"Content-Length": "1"})


def test_a_connection_serves_urllib3s_steps_and_the_in_memory_path_in_turn(recorder: Recorder) -> None:
    http = HttpClient(jobs=1, connect_timeout=5, read_timeout=7)
    for i in range(3):
        chunks = [b"a" * 1000, b"b" * 24]  # an iterable body: urllib3's own request steps
        assert http.request("PUT", f"{recorder.url}/it{i}", body=iter(chunks), headers={"Content-Length": "1024"}
                            ).status == 200
        assert http.request("PUT", f"{recorder.url}/mem{i}", body=b"c" * 10, headers={"Content-Length": "10"}
                            ).status == 200
    assert [b for _p, _h, b in recorder.seen] == [b"a" * 1000 + b"b" * 24, b"c" * 10] * 3
    assert len(recorder.connections) == 1


def test_a_kept_connection_the_server_closed_unsaid_is_replayed_once_on_a_new_one(recorder: Recorder,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Within FRESH seconds of its answer a connection is handed out without urllib3's poll; if the
    server had closed it after all, the in-memory request goes again on a new connection, once."""
    import urllib3.connection

    polls: list[int] = []
    real = urllib3.connection.wait_for_read

    def counted(*a: Any, **k: Any) -> bool:
        polls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(urllib3.connection, "wait_for_read", counted)
    http = HttpClient(jobs=1)
    for i in range(4):  # kept alive: no poll at any checkout
        assert http.request("PUT", f"{recorder.url}/k{i}", body=b"k", headers={"Content-Length": "1"}).status == 200
    assert polls == [] and len(recorder.connections) == 1
    recorder.close_silently = True
    for i in range(3):  # each answer's connection is closed by the server: every next request is replayed
        assert http.request("PUT", f"{recorder.url}/s{i}", body=b"s", headers={"Content-Length": "1"}).status == 200
    assert [p for p, _h, _b in recorder.seen] == [f"/k{i}" for i in range(4)] + [f"/s{i}" for i in range(3)]
    # s0 on the kept one; s1 and s2 were sent on the connection the server had closed (no poll found
    # it out: the server never reads a request there), then again each on a new one
    assert len(recorder.connections) == 3 and polls == []


def test_a_streamed_body_is_not_sent_on_a_connection_the_server_closed(recorder: Recorder) -> None:
    """A streamed body cannot be replayed, so its checkout does poll a connection that skipped the check."""
    http = HttpClient(jobs=1)
    recorder.close_silently = True
    assert http.request("PUT", f"{recorder.url}/mem", body=b"m", headers={"Content-Length": "1"}).status == 200
    time.sleep(0.05)  # the server's close has arrived
    assert http.request("PUT", f"{recorder.url}/it", body=iter([b"ab", b"c"]), headers={"Content-Length": "3"}
                        ).status == 200
    assert [b for _p, _h, b in recorder.seen] == [b"m", b"abc"] and len(recorder.connections) == 2


def test_a_server_that_drops_every_request_gets_one_replay_then_the_error(recorder: Recorder) -> None:
    http = HttpClient(jobs=1)
    assert http.request("PUT", f"{recorder.url}/ok", body=b"o", headers={"Content-Length": "1"}).status == 200
    recorder.drop = True
    with pytest.raises(ConnectionResetError):  # RemoteDisconnected: the transfer's network error, retried after a pause
        http.request("PUT", f"{recorder.url}/gone", body=b"g", headers={"Content-Length": "1"})
    assert [p for p, _h, _b in recorder.seen] == ["/ok", "/gone", "/gone"]  # on the kept connection, then one new
    with pytest.raises(ConnectionResetError):  # a new connection is not replayed
        http.request("PUT", f"{recorder.url}/new", body=b"n", headers={"Content-Length": "1"})
    assert [p for p, _h, _b in recorder.seen][3:] == ["/new"]
