"""A fault-injecting HTTP/1.1 TCP proxy for tests (threads, 127.0.0.1, bounded).

It parses only the client->server direction (request line, headers, Content-Length body) so
it can pick a fault per *request* even on keep-alive connections; answers are piped back raw.
Faults are taken in order from a plan for requests whose method is in ``methods``:

- ``pass``   forward unchanged;
- ``cut``    forward the headers and half the body, then drop both connections;
- ``500`` / ``503``  answer that status (S3 XML error, ``Connection: close``) without forwarding;
- ``stall``  read the headers, then neither forward nor answer (until the client gives up);
- ``lose``   forward the whole request and wait for the server's whole answer, then drop the
  client's connection without it (a server killed after doing the work, before answering).

Presigned URLs are signed for a host: mint with the proxy's URL as the endpoint so the Host
header the server checks is the one that was signed.
"""
from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

MAX_CONNECTIONS = 64
_ERRORS = {"500": ("500 Internal Server Error", "InternalError"), "503": ("503 Service Unavailable", "SlowDown")}


class FaultProxy:
    def __init__(self, upstream: str, plan: Iterable[str] = (), methods: Iterable[str] = ("PUT",),
                 stall_seconds: float = 20.0) -> None:
        host, _, port = upstream.split("://", 1)[-1].rstrip("/").partition(":")
        self.upstream = (host, int(port or 80))
        self.plan: deque[str] = deque(plan)
        self.methods = {m.upper() for m in methods}
        self.stall_seconds = stall_seconds
        self.log: list[tuple[str, str, str]] = []  # (method, path without query, action)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="faultproxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_plan(self, plan: Iterable[str]) -> None:
        with self._lock:
            self.plan = deque(plan)

    def applied(self, action: str) -> int:
        return sum(1 for _m, _p, a in self.log if a == action)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    # -- internals -------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                continue
            if not self._slots.acquire(blocking=False):
                client.close()  # bounded: refuse beyond MAX_CONNECTIONS
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _next_action(self, method: str) -> str:
        with self._lock:
            if method.upper() in self.methods and self.plan:
                return self.plan.popleft()
        return "pass"

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
            reader = _Reader(client)
            while not self._stop.is_set():
                head = reader.head()
                if head is None:
                    return
                method, path, length = _parse(head)
                action = self._next_action(method)
                with self._lock:
                    self.log.append((method, path.split("?", 1)[0], action))
                if action == "pass":
                    upstream.sendall(head)
                    for chunk in reader.body(length):
                        upstream.sendall(chunk)
                elif action == "cut":
                    upstream.sendall(head)
                    sent = 0
                    for chunk in reader.body(length // 2):
                        upstream.sendall(chunk)
                        sent += len(chunk)
                    return
                elif action in _ERRORS:
                    for _ in reader.body(length):
                        pass
                    status, code = _ERRORS[action]
                    payload = f"<Error><Code>{code}</Code><Message>injected by faultproxy</Message></Error>".encode()
                    client.sendall(f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: "
                                   f"{len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
                    return
                elif action == "lose":
                    self._forward_and_lose(head, reader, length)
                    return
                elif action == "stall":
                    self._stop.wait(self.stall_seconds)
                    return
                else:
                    raise ValueError(f"unknown fault {action!r}")
        except OSError:
            return
        finally:
            for s in (client, upstream):
                if s is not None:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()
            self._slots.release()


    def _forward_and_lose(self, head: bytes, reader: _Reader, length: int) -> None:
        """``lose``: the request goes to the server on a connection of its own; its answer goes nowhere."""
        with socket.create_connection(self.upstream, timeout=30) as side:
            side.sendall(head)
            for chunk in reader.body(length):
                side.sendall(chunk)
            answer = _Reader(side)
            reply = answer.head()
            if reply is not None:
                for _ in answer.body(_parse(reply)[2]):
                    pass


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
            if len(self.buf) > 1 << 20:
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head + b"\r\n\r\n"

    def body(self, n: int) -> Any:
        while n > 0:
            if self.buf:
                chunk, self.buf = self.buf[:n], self.buf[n:]
            else:
                chunk = self.sock.recv(min(n, 1 << 20))
                if not chunk:
                    return
            n -= len(chunk)
            yield chunk


def _parse(head: bytes) -> tuple[str, str, int]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = (lines[0].split(" ") + ["", ""])[:3]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    return method, path, length


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(1 << 20)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
