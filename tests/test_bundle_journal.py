"""The bundle journal: a torn last line (kill -9 mid-write) is skipped, another bundle's file is ignored."""
from __future__ import annotations

from pathlib import Path

from s3mpu.user.bundle_journal import BundleJournal, bundle_journal_path


def test_records_survive_reopening_and_a_torn_line_loses_only_itself(tmp_path: Path) -> None:
    j = BundleJournal.open("ab" * 16, tmp_path)
    j.record("a.txt", 3, "e1")
    j.record("sub/b", 5, None)
    j.close()
    path = bundle_journal_path("ab" * 16, tmp_path)
    with path.open("ab") as fh:
        fh.write(b'{"p":"torn","s":1')  # a write cut short
    again = BundleJournal.open("ab" * 16, tmp_path)
    assert set(again.done) == {"a.txt", "sub/b"} and again.done["a.txt"].etag == "e1"
    again.record("c", 1, "e3")  # starts on a fresh line after the torn one
    again.close()
    assert set(BundleJournal.open("ab" * 16, tmp_path).done) == {"a.txt", "sub/b", "c"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_another_bundles_journal_under_this_name_counts_for_nothing(tmp_path: Path) -> None:
    j = BundleJournal.open("cd" * 16, tmp_path)
    j.record("a", 1, "e")
    j.close()
    bundle_journal_path("cd" * 16, tmp_path).rename(bundle_journal_path("ef" * 16, tmp_path))
    assert BundleJournal.open("ef" * 16, tmp_path).done == {}


def test_records_written_at_once_from_many_threads_are_whole_lines(tmp_path: Path) -> None:
    """Each line is one O_APPEND write outside the lock: 8 threads at once interleave lines, never bytes."""
    import json
    import threading

    j = BundleJournal.open("12" * 16, tmp_path)
    path = bundle_journal_path("12" * 16, tmp_path)

    def work(t: int) -> None:
        for i in range(150):
            j.record(f"t{t}/ü {i:03d}" + "x" * (i % 50), i, f"{t:02d}{i:030d}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_bytes().split(b"\n")  # before close: every record is already in the file
    assert lines[-1] == b"" and len(lines) == 1 + 8 * 150 + 1
    assert all(json.loads(line)["s"] < 150 for line in lines[1:-1])
    j.close()
    assert len(BundleJournal.open("12" * 16, tmp_path).done) == 8 * 150
