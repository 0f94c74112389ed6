"""A bundle's display: one overall bar (bytes and files) with the files in flight beneath it;
plain lines every few seconds without a TTY; nothing with -q or --json.

Why not the single-file display: a bundle's unit is the file, and 100,000 of them must not
mean 100,000 rows. Rows are shown only for files of at least ``ROW_MIN_SIZE`` (a 16 KiB file
is gone before a row could be drawn), at most ``MAX_ROWS`` at a time.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from s3mpu.units import MiB, format_size
from s3mpu.user.bundle_result import BundleProgress, NullBundleProgress

MAX_ROWS = 6
ROW_MIN_SIZE = 8 * MiB


class PlainBundleProgress:
    """A line every ``interval`` seconds (cron logs): files and bytes done, speed."""

    def __init__(self, stream: TextIO, label: str, interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.label, self.interval, self.clock = stream, label, interval, clock
        self.lock = threading.Lock()
        self.total = self.sent = self.before = 0
        self.files = self.files_done = 0
        self.t0 = self.last = clock()

    def start(self, total_bytes: int, done_bytes: int, total_files: int, done_files: int) -> None:
        self.total, self.before, self.files, self.files_done = total_bytes, done_bytes, total_files, done_files
        self.t0 = self.last = self.clock()
        left = total_files - done_files
        self._write(f"uploading {self.label}: {left} of {total_files} files, "
                    f"{format_size(total_bytes - done_bytes)} to send"
                    + (f" ({done_files} already uploaded)" if done_files else ""))

    def file_started(self, path: str, size: int) -> None:
        pass

    def advance(self, n: int, path: str = "") -> None:
        with self.lock:
            self.sent += n
        self._tick()

    def file_finished(self, path: str, ok: bool) -> None:
        with self.lock:
            self.files_done += 1 if ok else 0
        self._tick()

    def _tick(self) -> None:
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._write(self.line())

    def line(self) -> str:
        elapsed = max(self.clock() - self.t0, 1e-6)
        return (f"{self.label}: {self.files_done}/{self.files} files, "
                f"{format_size(self.before + self.sent)} of {format_size(self.total)}, "
                f"{format_size(self.sent / elapsed)}/s")

    def close(self) -> None:
        self._write(self.line())

    def _write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class RichBundleProgress:
    """Overall bar (bytes, with files done in its description) and rows for the large files in flight."""

    def __init__(self, console: Any, label: str) -> None:
        self.console, self.label = console, label
        self.progress: Any = None
        self.overall: Any = None
        self.rows: dict[str, Any] = {}
        self.files = self.files_done = 0
        self.lock = threading.Lock()

    def start(self, total_bytes: int, done_bytes: int, total_files: int, done_files: int) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        from s3mpu.cli.progress_rich import binary_speed_column

        self.files, self.files_done = total_files, done_files
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 DownloadColumn(binary_units=True), binary_speed_column(), TimeRemainingColumn(),
                                 console=self.console, transient=False, refresh_per_second=5)
        self.progress.start()
        self.overall = self.progress.add_task(self._desc(), total=total_bytes or 1,
                                              completed=done_bytes if total_bytes else 0)

    def _desc(self) -> str:
        return f"{self.label} ({self.files_done}/{self.files} files)"

    def file_started(self, path: str, size: int) -> None:
        if self.progress is None or size < ROW_MIN_SIZE:
            return
        with self.lock:
            if path not in self.rows and len(self.rows) < MAX_ROWS:
                self.rows[path] = self.progress.add_task(f"  {path[-40:]}", total=size)

    def advance(self, n: int, path: str = "") -> None:
        if self.progress is not None:
            self.progress.advance(self.overall, n)
            row = self.rows.get(path)
            if row is not None:
                self.progress.advance(row, n)

    def file_finished(self, path: str, ok: bool) -> None:
        if self.progress is None:
            return
        with self.lock:
            self.files_done += 1 if ok else 0
            row = self.rows.pop(path, None)
        if row is not None:
            self.progress.remove_task(row)
        self.progress.update(self.overall, description=self._desc())

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def make_bundle_progress(out: Any, mode: str, label: str) -> BundleProgress:
    """``--progress {auto,rich,plain,none}`` for a bundle (tqdm is the Python API's: plain here)."""
    if mode == "none" or out.quiet or (out.json_mode and mode == "auto"):
        return NullBundleProgress()
    if mode == "rich" or (mode == "auto" and out.is_tty):
        return RichBundleProgress(out.console, label)
    return PlainBundleProgress(out.stderr, label)
