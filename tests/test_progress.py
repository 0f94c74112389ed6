"""Progress sinks: deterministic with an injected clock and stream."""
from __future__ import annotations

import io

from s3mpu.user.progress import NullProgress, PlainProgress, TqdmProgress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_plain_prints_one_line_per_interval_without_control_chars() -> None:
    c = Clock()
    out = io.StringIO()
    p = PlainProgress(out, interval=5, clock=c, label="big.mov")
    p.start(total=100 * 1024 * 1024, done=0, parts=10)
    for i in range(100):
        c.t += 0.5  # 1 MiB every half second: 2 MiB/s
        p.part_started(i // 10 + 1, 10 * 1024 * 1024)
        p.advance(1024 * 1024, i // 10 + 1)
        if i % 10 == 9:
            p.part_finished(i // 10 + 1, True)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("uploading big.mov: 10 parts")
    # 50 s of transfer at one line per 5 s -> about 10 progress lines, plus start and summary
    assert 9 <= len(lines) - 2 <= 11
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert "2.0 MiB/s" in lines[5]
    assert lines[-1].startswith("sent 100.0 MiB in 50.0s (2.0 MiB/s), parts 10/10")


def test_plain_rollback_and_resume_counts() -> None:
    c = Clock()
    out = io.StringIO()
    p = PlainProgress(out, interval=1, clock=c)
    p.start(total=1000, done=400, parts=3)
    assert "already uploaded" in out.getvalue()
    p.advance(300, 1)
    p.advance(-300, 1)  # the attempt failed: its bytes are given back
    c.t = 2
    p.advance(100, 1)
    assert "50.0%" in out.getvalue().splitlines()[-1]


def test_null_and_tqdm_accept_events() -> None:
    for sink in (NullProgress(), TqdmProgress(io.StringIO())):
        sink.start(10, 0, 1)
        sink.part_started(1, 10)
        sink.advance(10, 1)
        sink.part_finished(1, True)
        sink.close()
    buf = io.StringIO()
    t = TqdmProgress(buf)
    t.start(10, 2, 1)
    t.advance(8)
    t.close()
    assert "10/10" in buf.getvalue() or "100%" in buf.getvalue()


def test_rich_progress_draws_on_a_console() -> None:
    from rich.console import Console

    from s3mpu.cli.output import Output
    from s3mpu.cli.progress_rich import RichProgress, make_progress

    buf = io.StringIO()
    r = RichProgress(Console(file=buf, force_terminal=True, width=100), "obj")
    r.start(2048, 0, 2)
    r.part_started(1, 1024)
    r.advance(1024, 1)
    r.part_finished(1, True)
    r.close()
    assert "obj (2 parts)" in buf.getvalue()
    plain = make_progress(Output(stderr=io.StringIO()), "auto")
    assert isinstance(plain, PlainProgress)  # no TTY -> plain lines
    assert isinstance(make_progress(Output(quiet=True), "auto"), NullProgress)
