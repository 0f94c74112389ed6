"""Transfer engine: retry policy, error classification, cancellation, over a real local HTTP socket.

The server here is a scripted ``http.server`` on 127.0.0.1 (a real socket, not a mock): each
request to a part path takes the next scripted answer, then succeeds with the body's MD5.
"""
from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3mpu.errors import AccessDeniedError, DataError, S3mpuError, TempFailError
from s3mpu.user.httpclient import HttpClient, parse_list_parts
from s3mpu.user.transfer import PartTask, RetryPolicy, Transfer, hash_range
from servers import LocalHTTPServer, QuietHandler, serving

EXPIRED_400 = (400, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
DENIED_403 = (403, b"<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>")
SLOWDOWN = (503, b"<Error><Code>SlowDown</Code><Message>slow</Message></Error>")


class Scripted(LocalHTTPServer):
    def __init__(self) -> None:
        super().__init__(Handler)
        self.script: dict[str, list[Any]] = {}
        self.requests: list[tuple[str, int]] = []
        self.bodies: dict[str, bytes] = {}
        self.lock = threading.Lock()


class Handler(QuietHandler):
    def do_PUT(self) -> None:  # noqa: N802
        srv: Scripted = self.server  # type: ignore[assignment]
        body = self.read_body()
        with srv.lock:
            srv.requests.append((self.path, len(body)))
            step = srv.script.get(self.path, [])
            action = step.pop(0) if step else "ok"
        if action == "ok" or action == "bad-etag":
            srv.bodies[self.path] = body
            etag = hashlib.md5(body).hexdigest() if action == "ok" else "0" * 32
            self.send_response(200)
            self.send_header("ETag", f'"{etag}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if action[0] == "raw":  # a hostile or broken answer, as bytes, then the connection closes
            self.wfile.write(action[1](hashlib.md5(body).hexdigest()))
            self.close_connection = True
            return
        status, payload = action
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[Scripted]:
    with serving(Scripted()) as s:
        yield s


@pytest.fixture
def data(tmp_path: Path) -> tuple[int, bytes]:
    payload = random.Random(7).randbytes(3 * 1024 * 1024 + 123)
    p = tmp_path / "f.bin"
    p.write_bytes(payload)
    fd = os.open(p, os.O_RDONLY)
    yield fd, payload
    os.close(fd)


def _tasks(url: str, payload: bytes, part: int = 1024 * 1024) -> list[PartTask]:
    out = []
    for i, off in enumerate(range(0, len(payload), part)):
        out.append(PartTask(i + 1, off, min(part, len(payload) - off), f"{url}/p{i + 1}"))
    return out


FAST = RetryPolicy(retries=3, base=0.01, cap=0.02, rng=random.Random(1))


def test_retry_policy_backoff_is_exponential_with_bounded_jitter() -> None:
    p = RetryPolicy(retries=5, base=0.5, cap=8, rng=random.Random(42))
    for attempt, full in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        for _ in range(20):
            d = p.delay(attempt)
            assert full / 2 <= d <= full


def test_all_parts_sent_and_recorded(server: Scripted, data: tuple[int, bytes]) -> None:
    fd, payload = data
    recorded: list[int] = []
    t = Transfer(fd, HttpClient(4), jobs=4, retry=FAST, on_done=lambda d: recorded.append(d.number))
    out = t.run(_tasks(server.url, payload))
    assert out.fatal is None and not out.failed
    assert sorted(recorded) == [1, 2, 3, 4]
    assert b"".join(server.bodies[f"/p{i}"] for i in range(1, 5)) == payload
    assert out.bytes_sent == len(payload)
    assert {d.md5 for d in out.done} == {hashlib.md5(server.bodies[f"/p{d.number}"]).hexdigest() for d in out.done}


def test_the_first_retry_of_a_one_off_failure_is_quick_and_throttling_keeps_the_full_backoff() -> None:
    p = RetryPolicy(retries=5, base=0.5, cap=8, rng=random.Random(3))
    for _ in range(20):
        assert 0.025 <= p.delay(1, throttled=False) <= 0.05  # a 500, a reset: as aws-sdk-go (s5cmd)
        assert 0.25 <= p.delay(1, throttled=True) <= 0.5  # 503 SlowDown, 429
        assert 0.5 <= p.delay(2, throttled=False) <= 1.0  # then the exponential schedule


class _Noting(RetryPolicy):
    """FAST's delays, noting which kind each retry asked for."""

    def __init__(self) -> None:
        super().__init__(retries=3, base=0.01, cap=0.02, rng=random.Random(1))
        self.asked: list[tuple[int, bool]] = []

    def delay(self, attempt: int, throttled: bool = True) -> float:
        self.asked.append((attempt, throttled))
        return super().delay(attempt, throttled)


def test_5xx_and_slowdown_are_retried(server: Scripted, data: tuple[int, bytes]) -> None:
    fd, payload = data
    server.script["/p2"] = [(500, b"oops"), SLOWDOWN]
    server.script["/p3"] = [(429, b"")]
    policy = _Noting()
    out = Transfer(fd, HttpClient(2), jobs=2, retry=policy).run(_tasks(server.url, payload))
    assert not out.failed and out.fatal is None
    attempts = {d.number: d.attempts for d in out.done}
    assert attempts == {1: 1, 2: 3, 3: 2, 4: 1}
    assert sorted(policy.asked) == [(1, False), (1, True), (2, True)]  # 500; 429; 503 SlowDown
    assert out.bytes_sent == len(payload)  # failed attempts were rolled back


@pytest.mark.parametrize("answer", [EXPIRED_400, DENIED_403])
def test_expired_or_refused_is_fatal_and_never_retried(server: Scripted, data: tuple[int, bytes],
                                                       answer: tuple[int, bytes]) -> None:
    fd, payload = data
    server.script["/p1"] = [answer] * 5
    out = Transfer(fd, HttpClient(1), jobs=1, retry=FAST).run(_tasks(server.url, payload))
    assert isinstance(out.fatal, AccessDeniedError)
    assert ("expired" in out.fatal.message) == (answer is EXPIRED_400)
    assert [p for p, _ in server.requests].count("/p1") == 1  # not retried
    assert len(server.requests) == 1  # and every other worker stopped


def test_wrong_etag_is_retried_then_reported(server: Scripted, data: tuple[int, bytes]) -> None:
    fd, payload = data
    server.script["/p4"] = ["bad-etag"] * 10
    out = Transfer(fd, HttpClient(2), jobs=2, retry=FAST).run(_tasks(server.url, payload))
    assert list(out.failed) == [4] and isinstance(out.failed[4], DataError)
    assert [p for p, _ in server.requests].count("/p4") == FAST.retries + 1
    assert sorted(d.number for d in out.done) == [1, 2, 3]


def test_connection_refused_exhausts_retries_then_stops_dispatching(data: tuple[int, bytes]) -> None:
    import socket

    fd, payload = data
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: connections are refused
    t = Transfer(fd, HttpClient(1), jobs=1, retry=FAST, max_failures=2)
    out = t.run(_tasks(f"http://127.0.0.1:{port}", payload))
    assert sorted(out.failed) == [1, 2]  # then no more parts were tried
    assert all(isinstance(e, TempFailError) for e in out.failed.values())
    assert not out.done and out.bytes_sent == 0


def test_content_bound_md5_mismatch_is_refused_before_sending(server: Scripted, data: tuple[int, bytes]) -> None:
    fd, payload = data
    tasks = _tasks(server.url, payload)
    tasks[0] = PartTask(1, 0, tasks[0].size, tasks[0].url, md5="0" * 32)
    out = Transfer(fd, HttpClient(1), jobs=1, retry=FAST).run(tasks[:1])
    assert isinstance(out.fatal, DataError) and "nothing sent" in out.fatal.message
    assert server.requests == []


def test_cancel_before_start_sends_nothing(server: Scripted, data: tuple[int, bytes]) -> None:
    fd, payload = data
    cancel = threading.Event()
    cancel.set()
    out = Transfer(fd, HttpClient(2), jobs=2, retry=FAST, cancel=cancel).run(_tasks(server.url, payload))
    assert out.cancelled and not out.done and server.requests == []


def test_cancel_stops_a_rate_limited_transfer_mid_part(server: Scripted, data: tuple[int, bytes]) -> None:
    from s3mpu.user.ratelimit import TokenBucket

    fd, payload = data
    cancel = threading.Event()
    # 64 KiB/s: the first part alone would take 16 s; cancelling lands within one chunk wait
    t = Transfer(fd, HttpClient(1), jobs=1, retry=FAST, cancel=cancel, limiter=TokenBucket(64 * 1024))
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    out = t.run(_tasks(server.url, payload))
    assert out.cancelled and not out.done
    assert out.bytes_sent == 0  # the unfinished attempt was rolled back


class _Watching(Transfer):
    """Records which parts are being hashed at once, and in which order hashing starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watch = threading.Lock()
        self.hashing: set[int] = set()
        self.peak = 0
        self.started: list[int] = []

    def digest(self, task: PartTask, buf: bytearray) -> str:
        with self.watch:
            self.hashing.add(task.number)
            self.peak = max(self.peak, len(self.hashing))
            self.started.append(task.number)
        try:
            time.sleep(0.01)  # widen the window in which a third hash could start
            return super().digest(task, buf)
        finally:
            with self.watch:
                self.hashing.discard(task.number)


@pytest.mark.parametrize("slots", [1, 2])
def test_at_most_hash_slots_parts_are_hashed_at_once_in_part_order(server: Scripted, data: tuple[int, bytes],
                                                                   slots: int) -> None:
    fd, payload = data
    tasks = _tasks(server.url, payload, part=256 * 1024)  # 13 parts for 6 workers
    t = _Watching(fd, HttpClient(6), jobs=6, retry=FAST, hash_slots=slots)
    out = t.run(tasks)
    assert out.fatal is None and not out.failed and len(out.done) == len(tasks)
    assert t.peak == slots  # never more, and the slots are used
    assert sorted(t.started) == [task.number for task in tasks]
    if slots == 1:  # a part is taken only once the slot is held: one slot hashes them strictly in part order
        assert t.started == sorted(t.started)


def test_a_fatal_part_stops_workers_waiting_for_a_hashing_slot(server: Scripted, data: tuple[int, bytes]) -> None:
    """Five workers queue for one slot; a refused part ends the run at once, nothing after it is sent."""
    fd, payload = data
    tasks = _tasks(server.url, payload, part=64 * 1024)  # 49 parts: hashing them all would take 0.5 s
    server.script["/p1"] = [DENIED_403]
    t = _Watching(fd, HttpClient(6), jobs=6, retry=FAST, hash_slots=1)
    started = time.monotonic()
    out = t.run(tasks)
    assert isinstance(out.fatal, AccessDeniedError)
    assert time.monotonic() - started < 5
    assert len(t.started) < len(tasks)  # the waiting workers gave up instead of hashing every part
    assert not any(path == f"/p{len(tasks)}" for path, _ in server.requests)


def test_out_of_order_mode_sends_in_memory_tasks_without_hashing_them_again(server: Scripted,
                                                                          data: tuple[int, bytes]) -> None:
    """A bundle's engine: small files come read and hashed (``data_md5``), the file's parts are hashed here."""
    fd, payload = data
    parts = _tasks(server.url, payload, part=512 * 1024)
    small = [PartTask(100 + i, 0, len(b), f"{server.url}/s{i}", data=memoryview(b), data_md5=hashlib.md5(b).hexdigest())
             for i, b in enumerate([b"", b"x", payload[:16384], payload[5:70_000]])]
    mixed = iter([small[0], parts[0], small[1], *parts[1:], *small[2:]])  # an iterator, as a bundle hands them out
    t = _Watching(fd, HttpClient(4), jobs=4, retry=FAST, hash_slots=1, hash_in_order=False, queue_bound=8)
    out = t.run(mixed)
    assert out.fatal is None and not out.failed and len(out.done) == len(parts) + len(small)
    assert sorted(t.started) == sorted(task.number for task in parts + small)  # each digested once
    assert server.bodies["/s3"] == payload[5:70_000] and server.bodies["/s1"] == b"x" and server.bodies["/s0"] == b""
    assert b"".join(server.bodies[f"/p{p.number}"] for p in parts) == payload
    assert out.bytes_sent == len(payload) + sum(task.size for task in small)


def test_a_prehashed_task_that_differs_from_its_plan_is_refused_unsent(server: Scripted) -> None:
    body = b"what the file holds now"
    task = PartTask(1, 0, len(body), f"{server.url}/s", md5="0" * 32, data=memoryview(body),
                    data_md5=hashlib.md5(body).hexdigest())
    out = Transfer(-1, HttpClient(1), jobs=1, retry=FAST, hash_in_order=False).run(iter([task]))
    assert isinstance(out.fatal, DataError) and "nothing sent" in out.fatal.message
    assert server.requests == []


def test_hash_range_matches_hashlib(data: tuple[int, bytes]) -> None:
    fd, payload = data
    buf = bytearray(4096)
    assert hash_range(fd, 1000, 50_000, buf) == hashlib.md5(payload[1000:51_000]).hexdigest()
    assert hash_range(fd, 0, 0, buf) == hashlib.md5(b"").hexdigest()


def test_parse_list_parts_with_namespace_and_truncation() -> None:
    xml = (b'<?xml version="1.0"?><ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
           b"<IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker>"
           b'<Part><PartNumber>1</PartNumber><ETag>"AB"</ETag><Size>5</Size></Part>'
           b"<Part><PartNumber>2</PartNumber><ETag>cd</ETag><Size>6</Size></Part></ListPartsResult>")
    parts, truncated, marker = parse_list_parts(xml)
    assert parts == [{"number": 1, "size": 5, "etag": "ab"}, {"number": 2, "size": 6, "etag": "cd"}]
    assert truncated and marker == "2"


def test_a_narrowed_window_parks_workers_and_every_task_still_lands(server: Scripted) -> None:
    """A bundle's engine on loopback: the window narrows after a few answers, the workers beyond it
    take at most the task they had already begun, and at the end they all leave (the run returns)."""
    from collections import Counter

    from s3mpu.user.window import Window

    bodies = [bytes([i % 251]) * (100 + i) for i in range(150)]
    tasks = [PartTask(i + 1, 0, len(b), f"{server.url}/w{i}", data=memoryview(b), data_md5=hashlib.md5(b).hexdigest())
             for i, b in enumerate(bodies)]
    window = Window(16, least=3, rate=1.0, every=5)  # rate 1/s: every round trip gives the least
    narrowed: Counter[int] = Counter()  # worker index -> requests it began once the window was 3

    class Counting(HttpClient):
        def request(self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
            if window.limit == 3:
                narrowed[int(threading.current_thread().name.rsplit("-", 1)[1])] += 1
            return super().request(method, url, body, headers)

    out = Transfer(-1, Counting(16), jobs=16, retry=FAST, hash_in_order=False, queue_bound=32,
                   window=window).run(iter(tasks))
    assert out.fatal is None and not out.failed and len(out.done) == len(tasks)
    assert all(server.bodies[f"/w{i}"] == b for i, b in enumerate(bodies))
    assert window.limit == 16  # opened at the end
    assert all(n <= 1 for i, n in narrowed.items() if i >= 3)  # parked after the task they held
    assert sum(n for i, n in narrowed.items() if i < 3) >= 100  # the three in the window sent the rest


def test_a_bug_in_every_worker_ends_the_run_with_the_error_instead_of_hanging(server: Scripted) -> None:
    """A worker that dies of an unexpected error used to leave the feeder waiting on a full bounded
    queue for good; now the first such error is the run's, the rest are cancelled, and run returns."""
    bodies = [b"%d" % i * 100 for i in range(200)]
    tasks = iter([PartTask(i + 1, 0, len(b), f"{server.url}/b{i}", data=memoryview(b),
                           data_md5=hashlib.md5(b).hexdigest()) for i, b in enumerate(bodies)])

    def broken(_done: Any) -> None:
        raise KeyError("a bug")

    finished = threading.Event()
    result: list[Any] = []

    def go() -> None:
        result.append(Transfer(-1, HttpClient(4), jobs=4, retry=FAST, hash_in_order=False, queue_bound=4,
                               on_done=broken).run(tasks))
        finished.set()

    threading.Thread(target=go, daemon=True).start()
    assert finished.wait(20), "the transfer hung after its workers died"
    out = result[0]
    assert isinstance(out.fatal, S3mpuError) and "internal error" in out.fatal.message
    assert "KeyError" in out.fatal.message and "Re-run" in out.fatal.hint
    assert len(server.requests) < len(bodies)  # stopped, not sent to the end


_HOSTILE_ANSWERS = {
    # cut off inside the header block, the ETag half sent
    "cut": lambda md5: b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: "' + md5[:10].encode(),
    # more header lines than http.client allows
    "many": lambda md5: b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + f'ETag: "{md5}"\r\n\r\n'.encode(),
    # one header line longer than http.client allows
    "long": lambda md5: b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 70_000 + f'\r\nETag: "{md5}"\r\n\r\n'.encode(),
    # the right ETag smuggled as the continuation of another header (the email parser's reading: no ETag)
    "folded": lambda md5: f'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: 1\r\n ETag: "{md5}"\r\n\r\n'.encode(),
    # a wrong ETag first, the right one second: the first counts, as with http.client
    "twice": lambda md5: f'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: "{"0" * 32}"\r\nETag: "{md5}"\r\n\r\n'.encode(),
    # not HTTP/1.x at all
    "garbage": lambda md5: b"SSH-2.0-OpenSSH\r\n\r\n",
}


@pytest.mark.parametrize("kind", sorted(_HOSTILE_ANSWERS))
def test_a_hostile_or_broken_answer_is_never_taken_for_success_and_the_retry_lands(
        server: Scripted, data: tuple[int, bytes], kind: str) -> None:
    """Answers are read by QuickResponse (s3mpu/user/httphead.py) on both paths: an in-memory body
    (a bundle's small file) and a part streamed from the file. A broken or hostile header block
    is retried, never counted as sent; once retries run out the part fails, and a re-run lands it."""
    fd, payload = data
    small = payload[:16384]
    tasks = [*_tasks(server.url, payload)[:2],
             PartTask(9, 0, len(small), f"{server.url}/s", data=memoryview(small),
                      data_md5=hashlib.md5(small).hexdigest())]
    answer = ("raw", _HOSTILE_ANSWERS[kind])
    server.script["/p1"] = [answer]
    server.script["/s"] = [answer]
    out = Transfer(fd, HttpClient(2), jobs=2, retry=FAST, hash_in_order=False).run(iter(tasks))
    assert out.fatal is None and not out.failed
    assert {d.number: d.attempts for d in out.done} == {1: 2, 2: 1, 9: 2}
    assert server.bodies["/s"] == small and server.bodies["/p1"] == payload[:1024 * 1024]
    assert out.bytes_sent == 2 * 1024 * 1024 + len(small)  # the refused attempts were rolled back

    server.script["/s"] = [answer] * (FAST.retries + 1)  # every attempt: the object fails, nothing counted
    out = Transfer(-1, HttpClient(1), jobs=1, retry=FAST, hash_in_order=False).run(iter(tasks[2:]))
    assert list(out.failed) == [9] and out.bytes_sent == 0
    out = Transfer(-1, HttpClient(1), jobs=1, retry=FAST, hash_in_order=False).run(iter(tasks[2:]))
    assert out.fatal is None and [d.number for d in out.done] == [9]  # the re-run converges
