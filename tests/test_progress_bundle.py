"""A bundle's displays: plain lines on a clock (injected), rich rows only for large files in flight."""
from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from s3mpu.cli.output import Output
from s3mpu.cli.progress_bundle import PlainBundleProgress, RichBundleProgress, make_bundle_progress
from s3mpu.user.bundle_result import NullBundleProgress


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_plain_lines_say_files_and_bytes_every_interval_and_at_the_end() -> None:
    out, clock = io.StringIO(), Clock()
    p = PlainBundleProgress(out, "s3://b/in/", interval=5.0, clock=clock)
    p.start(30 * 1024 * 1024, 10 * 1024 * 1024, 10, 4)
    p.file_started("a", 1024)
    p.advance(1024 * 1024, "a")
    p.file_finished("a", True)
    assert len(out.getvalue().splitlines()) == 1  # nothing before the interval
    clock.t += 5
    p.advance(1024 * 1024, "b")
    p.file_finished("b", False)  # a failed file is not counted done
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "uploading s3://b/in/: 6 of 10 files, 20.0 MiB to send (4 already uploaded)"
    assert lines[1].startswith("s3://b/in/: 5/10 files, 12.0 MiB of 30.0 MiB, ")
    assert lines[-1].startswith("s3://b/in/: 5/10 files, 12.0 MiB of 30.0 MiB")


def test_rich_shows_rows_for_large_files_only_and_counts_files_done() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    p = RichBundleProgress(console, "s3://b/in/")
    p.start(100 * 1024 * 1024, 0, 3, 0)
    p.file_started("small.txt", 100)
    p.file_started("video.mov", 64 * 1024 * 1024)
    assert list(p.rows) == ["video.mov"]
    p.advance(1024 * 1024, "video.mov")
    assert p.progress.tasks[1].completed == 1024 * 1024
    p.file_finished("video.mov", True)
    p.file_finished("small.txt", True)
    assert p.rows == {} and "2/3 files" in p.progress.tasks[0].description
    p.close()


def test_the_display_follows_quiet_json_and_tty() -> None:
    def out(**kw: Any) -> Output:
        return Output(stdout=io.StringIO(), stderr=io.StringIO(), **kw)

    assert isinstance(make_bundle_progress(out(quiet=True), "auto", "x"), NullBundleProgress)
    assert isinstance(make_bundle_progress(out(json_mode=True), "auto", "x"), NullBundleProgress)
    assert isinstance(make_bundle_progress(out(), "auto", "x"), PlainBundleProgress)  # StringIO: no TTY
    assert isinstance(make_bundle_progress(out(), "rich", "x"), RichBundleProgress)
