"""Progress display for the CLI: rich bars on a TTY, plain lines for logs, nothing with -q.

Why here and not in the core: rich is a presentation choice of the command line; the
library reports through :class:`s3mpu.user.progress.ProgressSink` and never imports rich.
"""
from __future__ import annotations

import threading
from typing import Any

from s3mpu.units import format_size
from s3mpu.user.progress import NullProgress, PlainProgress, ProgressSink, TqdmProgress

MAX_ACTIVE_ROWS = 8


class RichProgress:
    """An overall bar (speed, ETA) plus one row per part in flight (at most ``MAX_ACTIVE_ROWS``)."""

    def __init__(self, console: Any, label: str = "upload") -> None:
        self.console = console
        self.label = label
        self.progress: Any = None
        self.overall: Any = None
        self.rows: dict[int, Any] = {}
        self.read_bytes = 0
        self.lock = threading.Lock()

    def start(self, total: int | None, done: int, parts: int | None) -> None:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 DownloadColumn(binary_units=True), TransferSpeedColumn(), TimeRemainingColumn(),
                                 console=self.console, transient=False, refresh_per_second=5)
        self.progress.start()
        if total is None:  # a stream: bytes sent and speed, no percentage or time left
            self.overall = self.progress.add_task(f"{self.label} (stdin, 0 B read)", total=None)
            return
        self.overall = self.progress.add_task(f"{self.label} ({parts} parts)", total=total or 1,
                                              completed=done if total else 1)

    def read(self, n: int) -> None:
        if self.progress is None:
            return
        with self.lock:
            self.read_bytes += n
            self.progress.update(self.overall, description=f"{self.label} (stdin, {format_size(self.read_bytes)} read)")

    def part_started(self, number: int, size: int) -> None:
        if self.progress is None:
            return
        with self.lock:
            if number in self.rows or len(self.rows) >= MAX_ACTIVE_ROWS:
                return
            self.rows[number] = self.progress.add_task(f"  part {number}", total=size or 1)

    def advance(self, n: int, number: int = 0) -> None:
        if self.progress is None:
            return
        self.progress.advance(self.overall, n)
        row = self.rows.get(number)
        if row is not None:
            self.progress.advance(row, n)

    def part_finished(self, number: int, ok: bool) -> None:
        if self.progress is None:
            return
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
