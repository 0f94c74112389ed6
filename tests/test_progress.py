"""Progress sinks: deterministic with an injected clock and stream."""
from __future__ import annotations

import io
import re

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
    assert lines[-1] == "sent 100.0 MiB in 50.0s (2.0 MiB/s), 10 of 10 parts"


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


MiB = 1024 * 1024


def _interrupted(sink: object) -> None:
    """Two parts in flight at 75 % overall; then Ctrl-C: the transfer gives back both parts' bytes."""
    sink.start(total=4 * MiB, done=0, parts=4)  # type: ignore[attr-defined]
    for n in (1, 2):
        sink.part_started(n, MiB)  # type: ignore[attr-defined]
        sink.advance(MiB, n)  # type: ignore[attr-defined]
        sink.part_finished(n, True)  # type: ignore[attr-defined]
    for n in (3, 4):
        sink.part_started(n, MiB)  # type: ignore[attr-defined]
        sink.advance(MiB // 2, n)  # type: ignore[attr-defined]
    for n in (3, 4):  # cancelled: the rollback comes, and the part never reports again
        sink.advance(-(MiB // 2), n)  # type: ignore[attr-defined]


def test_plain_keeps_last_values_after_ctrl_c() -> None:
    c = Clock()
    out = io.StringIO()
    p = PlainProgress(out, interval=1, clock=c)
    _interrupted(p)
    c.t = 2
    assert "75.0%" in p.line() and "-" not in p.line().split("parts")[1]
    p.close()
    assert out.getvalue().splitlines()[-1].startswith("sent 3.0 MiB in 2.0s (1.5 MiB/s), 2 of 4 parts")


def test_a_retry_still_gives_its_bytes_back() -> None:
    c = Clock()
    p = PlainProgress(io.StringIO(), interval=100, clock=c)
    p.start(total=2 * MiB, done=0, parts=2)
    p.part_started(1, MiB)
    p.advance(MiB // 2, 1)
    p.advance(-(MiB // 2), 1)
    p.part_finished(1, False)  # the attempt failed: the part will be sent again
    assert p.meter.done == 0
    p.part_started(1, MiB)
    p.advance(MiB, 1)
    assert p.meter.done == MiB


def test_rich_keeps_last_values_after_ctrl_c_and_uses_binary_speed() -> None:
    from rich.console import Console

    from s3mpu.cli.progress_rich import RichProgress

    buf = io.StringIO()
    r = RichProgress(Console(file=buf, force_terminal=True, width=120), "obj")
    _interrupted(r)
    task = r.progress.tasks[0]
    assert task.completed == 3 * MiB  # 75 %, not 50 %
    assert all(t.completed == MiB // 2 for t in r.progress.tasks[1:])  # part rows keep their last value
    r.close()
    text = buf.getvalue()
    assert "75%" in text and "-" not in text.split("obj (4 parts)")[-1].split("\n")[0].replace("-:--:--", "")
    assert "MB/s" not in text and "kB/s" not in text


def test_rich_speed_column_is_binary() -> None:
    from types import SimpleNamespace

    from s3mpu.cli.progress_rich import binary_speed_column

    col = binary_speed_column()
    assert col.render(SimpleNamespace(finished_speed=None, speed=10 * MiB)).plain == "10.0 MiB/s"
    assert col.render(SimpleNamespace(finished_speed=None, speed=-5000.0)).plain == "0 B/s"


def test_both_displays_say_resuming() -> None:
    from rich.console import Console

    from s3mpu.cli.progress_rich import RichProgress

    out = io.StringIO()
    p = PlainProgress(out, clock=Clock(), label="big.bin")
    p.start(total=100 * MiB, done=40 * MiB, parts=6)
    assert out.getvalue().splitlines()[0] == "resuming big.bin: 6 parts, 60.0 MiB to send; 40.0 MiB already uploaded"
    buf = io.StringIO()
    r = RichProgress(Console(file=buf, force_terminal=True, width=120), "big.bin")
    r.start(100 * MiB, 40 * MiB, 6)
    r.close()
    assert "resuming big.bin: 6 parts, 60.0 MiB to send; 40.0 MiB already uploaded" in buf.getvalue()
    assert "resuming big.bin (6 parts)" in buf.getvalue()


def test_summary_reports_sent_and_skipped_apart() -> None:
    c = Clock()
    out = io.StringIO()
    p = PlainProgress(out, interval=100, clock=c)
    p.start(total=300 * MiB, done=200 * MiB, parts=1)
    p.part_started(38, 100 * MiB)
    c.t = 2
    p.advance(100 * MiB, 38)
    p.part_finished(38, True)
    p.close()
    assert out.getvalue().splitlines()[-1] == ("sent 100.0 MiB in 2.0s (50.0 MiB/s), 1 of 1 part; "
                                                "200.0 MiB already uploaded before")


def test_nothing_left_to_send_is_said_so() -> None:
    from rich.console import Console

    from s3mpu.cli.progress_rich import RichProgress

    out = io.StringIO()
    p = PlainProgress(out, clock=Clock(), label="big.bin")
    p.start(total=40 * MiB, done=40 * MiB, parts=0)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines == ["nothing left to send: big.bin: 40.0 MiB already uploaded"]
    assert "0 B/s" not in out.getvalue() and "parts 0/0" not in out.getvalue()
    buf = io.StringIO()
    r = RichProgress(Console(file=buf, force_terminal=True, width=120), "big.bin")
    r.start(40 * MiB, 40 * MiB, 0)
    r.close()
    assert "nothing left to send" in buf.getvalue() and "0.0/" not in buf.getvalue()


def test_one_part_is_singular() -> None:
    out = io.StringIO()
    p = PlainProgress(out, clock=Clock())
    p.start(total=MiB, done=0, parts=1)
    assert out.getvalue().startswith("uploading 1 part, 1.0 MiB to send")


def test_tqdm_shows_binary_units_and_keeps_last_values_after_ctrl_c() -> None:
    buf = io.StringIO()
    t = TqdmProgress(buf, mininterval=0)
    _interrupted(t)
    assert t.bar.n == 3 * MiB  # 75 %: the cancelled parts' give-backs are not applied
    t.close()
    text = buf.getvalue()
    assert re.search(r"\d[KMGT]iB/s", text) and "75%" in text and "MB/s" not in text


def test_no_display_uses_richs_decimal_speed_column() -> None:
    """rich's TransferSpeedColumn is decimal (MB/s) beside binary totals: every display uses ours."""
    from pathlib import Path

    import s3mpu

    root = Path(s3mpu.__file__).parent
    users = [p.name for p in root.rglob("*.py") if "TransferSpeedColumn" in p.read_text(encoding="utf-8")]
    assert users == []
