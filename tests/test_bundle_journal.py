"""The bundle journal: a torn last line (kill -9 mid-write) is skipped, another bundle's file is ignored."""
from __future__ import annotations

from pathlib import Path
from typing import Any

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
    """8 threads at once: their lines interleave, never their bytes."""
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
    # before close every record is already in the file, followed by the rest of the map's zeros
    lines = path.read_bytes().rstrip(b"\0").split(b"\n")
    assert lines[-1] == b"" and len(lines) == 1 + 8 * 150 + 1
    assert all(json.loads(line)["s"] < 150 for line in lines[1:-1])
    j.close()
    assert len(BundleJournal.open("12" * 16, tmp_path).done) == 8 * 150


def test_a_run_killed_9_while_the_journal_is_mapped_loses_no_line(tmp_path: Path) -> None:
    """The lines are in the file's pages (not in the process) the moment they are recorded."""
    import subprocess
    import sys

    code = ("import os, signal, sys; from pathlib import Path; from s3mpu.user.bundle_journal import BundleJournal\n"
            "j = BundleJournal.open('34' * 16, Path(sys.argv[1]))\n"
            "for i in range(3000): j.record(f'd/{i}', i, 'e%d' % i)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, timeout=60)
    assert r.returncode == -9, r.stderr
    path = bundle_journal_path("34" * 16, tmp_path)
    assert path.read_bytes().endswith(b"\0")  # the map's unused tail: never closed, never cut
    again = BundleJournal.open("34" * 16, tmp_path)
    assert len(again.done) == 3000 and again.done["d/2999"] == ("d/2999", 2999, "e2999")
    again.record("after", 1, "x")
    again.close()
    raw = path.read_bytes()
    assert not raw.endswith(b"\0") and raw.count(b"\n") == 1 + 3000 + 1 + 1  # header, lines, fresh-line, ours
    assert len(BundleJournal.open("34" * 16, tmp_path).done) == 3001


def test_where_the_file_cannot_be_mapped_each_line_is_written(tmp_path: Path, monkeypatch: Any) -> None:
    import mmap

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise OSError(19, "No such device")  # what some network filesystems answer

    monkeypatch.setattr(mmap, "mmap", refuse)
    j = BundleJournal.open("56" * 16, tmp_path)
    for i in range(300):
        j.record(f"f{i}", i, None)
    path = bundle_journal_path("56" * 16, tmp_path)
    assert path.read_bytes().count(b"\n") == 301  # written before close
    j.close()
    assert len(BundleJournal.open("56" * 16, tmp_path).done) == 300 and not path.read_bytes().endswith(b"\0")
