"""Token bucket: exact waits under a fake clock, no real sleeps."""
from __future__ import annotations

import threading

import pytest

from s3mpu.user.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_is_free_then_debt_is_paid_by_waiting() -> None:
    c = FakeClock()
    b = TokenBucket(1000, burst=500, clock=c, sleep=c.sleep)
    assert b.acquire(500) == 0.0
    assert b.acquire(1000) == pytest.approx(1.0)  # 1000 bytes of debt at 1000 B/s
    assert c.slept == [pytest.approx(1.0)]


def test_long_run_rate_is_exact_whatever_the_chunk_size() -> None:
    c = FakeClock()
    b = TokenBucket(1_000_000, burst=100_000, clock=c, sleep=c.sleep)
    start = c.now
    for size in [65536, 1 << 20, 4096, 300_000] * 25:
        b.acquire(size)
    sent = sum([65536, 1 << 20, 4096, 300_000]) * 25
    # elapsed time is what the rate demands, less the initial burst
    assert c.now - start == pytest.approx((sent - 100_000) / 1_000_000)


def test_refill_is_capped_at_burst() -> None:
    c = FakeClock()
    b = TokenBucket(100, burst=50, clock=c, sleep=c.sleep)
    b.acquire(50)
    c.now += 1000  # a long idle period does not allow a huge burst
    assert b.tokens == 50
    assert b.acquire(100) == pytest.approx(0.5)


def test_shared_by_threads_total_rate_holds() -> None:
    c = FakeClock()
    lock = threading.Lock()

    def sleep(s: float) -> None:  # fake time advances as workers "sleep"
        with lock:
            c.slept.append(s)

    b = TokenBucket(1000, burst=0.001, clock=c, sleep=sleep)
    threads = [threading.Thread(target=lambda: [b.acquire(100) for _ in range(10)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the clock never moved, so the debt is the whole 4000 bytes: the last reservation waits ~4 s
    assert max(c.slept) == pytest.approx(4.0, abs=0.01)
    assert b.tokens == pytest.approx(-4000, abs=1)


def test_refund_returns_tokens() -> None:
    c = FakeClock()
    b = TokenBucket(100, burst=100, clock=c, sleep=c.sleep)
    b.reserve(100)
    b.refund(60)
    assert b.tokens == pytest.approx(60)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
