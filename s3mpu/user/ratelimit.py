"""A token bucket shared by every upload worker (``--limit-rate 20M``).

Why a shared bucket: the user asks for a total rate, not a per-connection one, so all
workers draw from one budget. The bucket runs on a *debt* model: a caller may take more
tokens than are available, leaving the balance negative, and sleeps until the debt is paid.
That keeps the long-run rate exact whatever the chunk size, needs no queue, and lets the
sleep happen outside the lock so workers never serialise on it.

The clock and the sleep function are injectable, so the tests drive it with a fake clock
and assert exact waits without ever sleeping.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` bytes per second on average, bursts of at most ``burst`` bytes."""

    def __init__(self, rate: float, burst: float | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        # A quarter second of traffic (at least 64 KiB) smooths the curve without long bursts.
        self.burst = float(burst) if burst is not None else max(self.rate / 4, 64 * 1024.0)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    def reserve(self, n: int) -> float:
        """Take ``n`` tokens now and return how long the caller must wait before using them."""
        with self._lock:
            self._refill(self._clock())
            self._tokens -= n
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, n: int, sleep: Callable[[float], object] | None = None) -> float:
        """Block (with ``sleep``, default the injected one) until ``n`` bytes may be sent; return the wait."""
        wait = self.reserve(n)
        if wait > 0:
            (sleep or self._sleep)(wait)
        return wait

    def refund(self, n: int) -> None:
        """Give back tokens reserved for bytes that were never sent (a cancelled chunk)."""
        with self._lock:
            self._tokens = min(self.burst, self._tokens + n)

    @property
    def tokens(self) -> float:
        """Current balance (negative while in debt); for tests and diagnostics."""
        with self._lock:
            self._refill(self._clock())
            return self._tokens
