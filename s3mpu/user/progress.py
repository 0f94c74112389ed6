"""Progress reporting, decoupled from the transfer engine.

Why a protocol: workers only report facts (a part started, n bytes went out, a part ended)
and never know how they are shown. The CLI picks a sink: rich bars on a TTY
(``s3mpu.cli.progress_rich``), one plain line every few seconds for cron logs, or nothing.
Every sink here takes an injected clock and stream so the tests are deterministic.
``advance`` may receive a negative count: a failed attempt gives back the bytes it had sent.
Sinks hold such a give-back (:class:`Rollbacks`) until the part reports again (its retry starts,
or it is declared failed): a transfer stopped by Ctrl-C gives back every part in flight and
never reports again, and a stopped display must keep its last values, not fall to 0 %.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from s3mpu.units import format_duration, format_size, plural


class ProgressSink(Protocol):
    """What the transfer engine reports. Implementations must be thread-safe."""

    def start(self, total: int, done: int, parts: int) -> None:
        """``total`` bytes to upload in all, ``done`` of them already uploaded (resume), ``parts`` to send."""

    def part_started(self, number: int, size: int) -> None: ...

    def advance(self, n: int, number: int = 0) -> None:
        """``n`` more bytes were sent (negative when a failed attempt is rolled back)."""

    def part_finished(self, number: int, ok: bool) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """Shows nothing (``-q``, ``--progress none``, library use)."""

    def start(self, total: int, done: int, parts: int) -> None:
        pass

    def part_started(self, number: int, size: int) -> None:
        pass

    def advance(self, n: int, number: int = 0) -> None:
        pass

    def part_finished(self, number: int, ok: bool) -> None:
        pass

    def close(self) -> None:
        pass


class Rollbacks:
    """Negative advances held per part until that part reports again (see the module docstring)."""

    def __init__(self) -> None:
        self._held: dict[int, int] = {}
        self._lock = threading.Lock()

    def hold(self, n: int, number: int) -> None:
        with self._lock:
            self._held[number] = self._held.get(number, 0) + n

    def release(self, number: int) -> int:
        """The held (negative) count for ``number``, now due; 0 when none."""
        with self._lock:
            return self._held.pop(number, 0)


def describe_start(label: str, total: int, done: int, parts: int) -> str:
    """The first line of an upload, the same in every display: what is sent, what is skipped."""
    name = f"{label}: " if label else ""
    if parts == 0 and total:
        return f"nothing left to send: {name}{format_size(total)} already uploaded"
    if done:
        return (f"resuming {name}{plural(parts, 'part')}, {format_size(total - done)} to send; "
                f"{format_size(done)} already uploaded")
    return f"uploading {name}{plural(parts, 'part')}, {format_size(total)} to send"


def describe_end(sent: int, skipped: int, elapsed: float, parts_done: int, parts_total: int) -> str:
    """The closing line: bytes sent in this run and their rate; skipped bytes apart."""
    if parts_total == 0:
        return "nothing left to send" + (f" ({format_size(skipped)} already uploaded)" if skipped else "")
    rate = sent / elapsed if elapsed > 0 else 0.0
    took = f"{elapsed:.1f}s" if elapsed < 60 else format_duration(elapsed)  # "0s" for a fast upload says nothing
    line = (f"sent {format_size(sent)} in {took} ({format_size(rate)}/s), "
            f"{parts_done} of {plural(parts_total, 'part')}")
    return line + (f"; {format_size(skipped)} already uploaded before" if skipped else "")


class Meter:
    """Byte counter with a sliding-window speed, shared by the textual sinks."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = 10.0) -> None:
        self.clock = clock
        self.window = window
        self.total = 0
        self.done = 0
        self.resumed = 0
        self.parts_total = 0
        self.parts_done = 0
        self.active: dict[int, list[int]] = {}  # part -> [sent, size]
        self.started = clock()
        self._samples: list[tuple[float, int]] = []
        self.lock = threading.Lock()
        self.rollbacks = Rollbacks()

    def start(self, total: int, done: int, parts: int) -> None:
        with self.lock:
            self.total, self.done, self.resumed, self.parts_total = total, done, done, parts
            self.started = self.clock()
            self._samples = [(self.started, done)]

    def advance(self, n: int, number: int = 0) -> None:
        if n < 0:
            self.rollbacks.hold(n, number)
            return
        self.settle(number)
        with self.lock:
            self.done += n
            if number in self.active:
                self.active[number][0] += n

    def settle(self, number: int) -> None:
        """Apply a give-back held for ``number``: the part reported again, so it really is retried."""
        n = self.rollbacks.release(number)
        if n:
            with self.lock:
                self.done += n
                if number in self.active:
                    self.active[number][0] += n

    def speed(self) -> float:
        """Bytes per second over the last ``window`` seconds (0 until there is a sample)."""
        with self.lock:
            now = self.clock()
            self._samples.append((now, self.done))
            while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
                self._samples.pop(0)
            t0, b0 = self._samples[0]
            return (self.done - b0) / (now - t0) if now > t0 else 0.0

    def eta(self, speed: float) -> float | None:
        left = self.total - self.done
        return left / speed if speed > 0 else None


class PlainProgress:
    """One line every ``interval`` seconds on ``stream`` (no ``\\r``, no ANSI): for cron mail and logs."""

    def __init__(self, stream: TextIO | None = None, interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, label: str = "") -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.clock = clock
        self.label = label
        self.meter = Meter(clock)
        self._next = 0.0
        self._lock = threading.Lock()

    def start(self, total: int, done: int, parts: int) -> None:
        self.meter.start(total, done, parts)
        self._next = self.clock() + self.interval
        self._write(describe_start(self.label, total, done, parts))

    def part_started(self, number: int, size: int) -> None:
        self.meter.settle(number)
        with self.meter.lock:
            self.meter.active[number] = [0, size]

    def advance(self, n: int, number: int = 0) -> None:
        self.meter.advance(n, number)
        if self.clock() >= self._next:
            self._tick()

    def part_finished(self, number: int, ok: bool) -> None:
        self.meter.settle(number)
        with self.meter.lock:
            self.meter.active.pop(number, None)
            if ok:
                self.meter.parts_done += 1
        if self.clock() >= self._next:
            self._tick()

    def _tick(self) -> None:
        with self._lock:
            now = self.clock()
            if now < self._next:
                return
            self._next = now + self.interval
        self._write(self.line())

    def line(self) -> str:
        m = self.meter
        speed = m.speed()
        eta = m.eta(speed)
        pct = 100.0 * m.done / m.total if m.total else 100.0
        return (f"{pct:5.1f}%  {format_size(m.done)} of {format_size(m.total)}  "
                f"parts {m.parts_done}/{m.parts_total}  {format_size(max(0.0, speed))}/s  "
                f"ETA {format_duration(eta) if eta is not None else '?'}")

    def close(self) -> None:
        m = self.meter
        if m.parts_total == 0:
            return  # the first line already said "nothing left to send"
        self._write(describe_end(m.done - m.resumed, m.resumed, self.clock() - m.started, m.parts_done,
                                 m.parts_total))

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not break the upload


class TqdmProgress:
    """A tqdm bar (``tqdm.auto``: notebook widget or terminal), for library users who like tqdm."""

    def __init__(self, stream: TextIO | None = None, **tqdm_kwargs: Any) -> None:
        self.stream = stream
        self.kwargs = tqdm_kwargs
        self.bar: Any = None
        self.rollbacks = Rollbacks()

    def start(self, total: int, done: int, parts: int) -> None:
        from tqdm.auto import tqdm

        # unit "iB" with a 1024 divisor: tqdm prints its prefix before the unit, so "MiB/s" (binary, as elsewhere)
        self.bar = tqdm(total=total, initial=done, unit="iB", unit_scale=True, unit_divisor=1024,
                        file=self.stream, desc=plural(parts, "part") + (" (resuming)" if done else ""), **self.kwargs)

    def _settle(self, number: int) -> None:
        n = self.rollbacks.release(number)
        if n and self.bar is not None:
            self.bar.update(n)

    def part_started(self, number: int, size: int) -> None:
        self._settle(number)

    def advance(self, n: int, number: int = 0) -> None:
        if n < 0:
            self.rollbacks.hold(n, number)
            return
        self._settle(number)
        if self.bar is not None:
            self.bar.update(n)

    def part_finished(self, number: int, ok: bool) -> None:
        self._settle(number)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
