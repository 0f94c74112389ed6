"""What put tells a person: sent bytes and their rate apart from skipped ones, "nothing left to
send" instead of zeros, singular counts (issue 12). Plain display: CliRunner's stderr is no TTY."""
from __future__ import annotations

from typing import Any

MiB = 1024 * 1024


def test_resumed_put_reports_sent_and_skipped_apart(e2e: Any, relay: Any, make_data: Any) -> None:
    data = make_data(3 * 5 * MiB, seed=51)
    m = e2e.mint(size=3 * 5 * MiB, relay=relay.url)
    first = e2e.cli(["put", m, data, "--parts", "1-2", "--no-complete"])
    assert first.code == 0, first.stderr
    again = e2e.cli(["put", m, data, "--parts", "1-2", "--no-complete"])
    assert again.code == 0, again.stderr
    assert "nothing left to send: " in again.stderr and "10.0 MiB already uploaded" in again.stderr
    assert "0 B/s" not in again.stderr and "parts 0/0" not in again.stderr
    r = e2e.cli(["put", m, data])
    assert r.code == 0, r.stderr
    assert "resuming obj-1.bin: 1 part, 5.0 MiB to send; 10.0 MiB already uploaded" in r.stderr
    assert "sent 5.0 MiB in " in r.stderr and "1 of 1 part; 10.0 MiB already uploaded before" in r.stderr
    summary = r.stdout.strip()
    assert summary.startswith(f"uploaded s3://{e2e.bucket}/obj-1.bin: 15.0 MiB in 3 parts; sent 5.0 MiB in "), summary
    assert "MiB/s), 10.0 MiB already uploaded before; ETag " in summary
    done = e2e.cli(["put", m, data])
    assert done.code == 0 and "already completed earlier" in done.stdout, done.stdout + done.stderr


def test_one_part_is_one_part(e2e: Any, relay: Any, make_data: Any) -> None:
    data = make_data(1000, seed=52)
    m = e2e.mint(size=1000, relay=relay.url)
    r = e2e.cli(["put", m, data])
    assert r.code == 0, r.stderr
    assert "uploading obj-1.bin: 1 part, 1000 B to send" in r.stderr and "1 parts" not in r.stderr + r.stdout
    assert "in 1 part; sent 1000 B in" in r.stdout
