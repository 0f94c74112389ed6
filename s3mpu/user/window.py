"""How many of a bundle's requests are in flight: Little's law on the shortest round trip seen.

Why: a 16 KiB PUT is all latency, so over a 20 ms link a bundle needs dozens of requests in
flight (``-j``, 64 by default; s5cmd runs 256). On a short round trip (loopback, a LAN) the same
64 workers only queue for the interpreter: every answer wakes a thread that must win the GIL
back, and those handoffs cost more CPU than the requests (2,000 x 16 KiB on rclone, loopback:
64 workers ~0.95 s, 16 ~0.80 s). In flight = rate x round trip, so with the round trip known,
``RATE`` (more small requests a second than one Python process can drive) times it is as many
as can help; the rest of the workers are parked, not spinning. The round trip is the shortest
seen, so queueing (which only lengthens round trips) never widens the window, and the window
starts wide: the first answers measure it, and a long link never waits for them.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable

#: small requests a second the window is sized for: more than one Python process sends (~2,500/s here)
RATE = 4000.0
#: answers between two sizings of the window
EVERY = 32


class Window:
    """The number of workers that may send at once, between ``least`` and ``most``; thread-safe."""

    def __init__(self, most: int, least: int = 16, rate: float = RATE, every: int = EVERY) -> None:
        self.most = max(1, most)
        self.least = max(1, min(least, self.most))
        self.rate = rate
        self.every = max(1, every)
        self.limit = self.most  # wide until the first answers tell the round trip
        self.shortest = math.inf
        self._answers = 0
        self._open = False  # set once the tasks have ended: never narrowed again
        self._cond = threading.Condition(threading.Lock())

    def answered(self, seconds: float) -> None:
        """One small request's round trip (called by the workers; a lost count under a race is harmless)."""
        if seconds < self.shortest:
            self.shortest = seconds
        self._answers += 1
        if self._answers % self.every == 0:
            self._size(max(self.least, min(self.most, math.ceil(self.rate * self.shortest))))

    def _size(self, limit: int) -> None:
        if limit == self.limit or self._open:
            return
        with self._cond:
            if self._open:
                return
            wider = limit > self.limit
            self.limit = limit
            if wider:
                self._cond.notify_all()

    def open(self) -> None:
        """Let every worker run, for good (the end of the tasks: the parked ones must take theirs, the last ``None``)."""
        with self._cond:
            self._open = True
            self.limit = self.most
            self._cond.notify_all()

    def wait_turn(self, index: int, stop: Callable[[], bool]) -> None:
        """Park worker ``index`` (0-based) while the window is narrower than it, or until ``stop()``."""
        if index < self.limit:
            return
        with self._cond:
            while index >= self.limit and not stop():
                self._cond.wait(0.25)


__all__ = ["Window", "RATE", "EVERY"]
