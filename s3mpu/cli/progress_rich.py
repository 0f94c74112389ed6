"""Progress display for the CLI: rich bars on a TTY, plain lines for logs, nothing with -q.

Why here and not in the core: rich is a presentation choice of the command line; the
library reports through :class:`s3mpu.user.progress.ProgressSink` and never imports rich.
Sizes and speeds are binary (MiB, MiB/s) like the totals and ``--limit-rate``: rich's own
speed column is decimal, so ``--limit-rate 10M`` would read as 10.5 MB/s.
"""
from __future__ import annotations

import threading
from typing import Any

from s3mpu.units import format_size, plural
from s3mpu.user.progress import NullProgress, PlainProgress, ProgressSink, Rollbacks, TqdmProgress, describe_start

MAX_ACTIVE_ROWS = 8


def binary_speed_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class BinarySpeedColumn(ProgressColumn):
        """Transfer speed in KiB/s, MiB/s (never negative: a retry's give-back is not a speed)."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None:
                return Text("?", style="progress.data.speed")
            return Text(f"{format_size(max(0.0, speed))}/s", style="progress.data.speed")

    return BinarySpeedColumn()


class RichProgress:
    """An overall bar (speed, ETA) plus one row per part in flight (at most ``MAX_ACTIVE_ROWS``)."""

    def __init__(self, console: Any, label: str = "upload") -> None:
        self.console = console
        self.label = label
        self.progress: Any = None
        self.overall: Any = None
        self.rows: dict[int, Any] = {}
        self.lock = threading.Lock()
        self.rollbacks = Rollbacks()

    def start(self, total: int, done: int, parts: int) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        if done or not parts:  # say it, as the plain display does: "resuming ...", "nothing left to send"
            self.console.print(describe_start(self.label, total, done, parts), highlight=False, markup=False)
        if not parts:
            return
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 DownloadColumn(binary_units=True), binary_speed_column(), TimeRemainingColumn(),
                                 console=self.console, transient=False, refresh_per_second=5)
        self.progress.start()
        how = "resuming " if done else ""
        self.overall = self.progress.add_task(f"{how}{self.label} ({plural(parts, 'part')})", total=total or 1,
                                              completed=done if total else 1)

    def _settle(self, number: int) -> None:
        n = self.rollbacks.release(number)
        if n:
            self._apply(n, number)

    def _apply(self, n: int, number: int) -> None:
        self.progress.advance(self.overall, n)
        row = self.rows.get(number)
        if row is not None:
            self.progress.advance(row, n)

    def part_started(self, number: int, size: int) -> None:
        if self.progress is None:
            return
        self._settle(number)
        with self.lock:
            if number in self.rows or len(self.rows) >= MAX_ACTIVE_ROWS:
                return
            self.rows[number] = self.progress.add_task(f"  part {number}", total=size or 1)

    def advance(self, n: int, number: int = 0) -> None:
        if self.progress is None:
            return
        if n < 0:  # held: applied only if this part reports again (a retry), never after Ctrl-C
            self.rollbacks.hold(n, number)
            return
        self._settle(number)
        self._apply(n, number)

    def part_finished(self, number: int, ok: bool) -> None:
        if self.progress is None:
            return
        self._settle(number)
        with self.lock:
            row = self.rows.pop(number, None)
        if row is not None:
            self.progress.remove_task(row)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def make_progress(out: Any, mode: str = "auto", label: str = "upload") -> ProgressSink:
    """The sink for ``--progress {auto,rich,plain,tqdm,none}`` given the Output (quiet/json/TTY)."""
    if mode == "none" or out.quiet or (out.json_mode and mode == "auto"):
        return NullProgress()
    if mode == "rich" or (mode == "auto" and out.is_tty):
        return RichProgress(out.console, label)
    if mode == "tqdm":
        return TqdmProgress(out.stderr)
    return PlainProgress(out.stderr, label=label)
