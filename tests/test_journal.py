"""Journal: crash-safe records, torn lines ignored, a changed file invalidates the records."""
from __future__ import annotations

import os
from pathlib import Path

from s3mpu.user.journal import FileIdentity, Journal, journal_path, read, state_dir


def _file(tmp_path: Path, data: bytes = b"x" * 100) -> Path:
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    return p


def test_state_dir_follows_xdg(tmp_path: Path) -> None:
    assert state_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "s3mpu"
    assert state_dir({"HOME": "/h"}) == Path("/h/.local/state/s3mpu")


def test_records_survive_reopen(tmp_path: Path) -> None:
    f = _file(tmp_path)
    j = Journal.open("up/1~x", "b", "k", FileIdentity.of(f), tmp_path)
    assert not j.existed
    j.record(1, 50, "a" * 32)
    j.record(2, 50, "b" * 32)
    j.close()
    assert oct(j.path.stat().st_mode & 0o777) == "0o600"
    again = Journal.open("up/1~x", "b", "k", FileIdentity.of(f), tmp_path)
    assert again.existed and not again.stale
    assert sorted(again.parts) == [1, 2] and again.parts[2].md5 == "b" * 32


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    f = _file(tmp_path)
    j = Journal.open("u", "b", "k", FileIdentity.of(f), tmp_path)
    j.record(1, 50, "a" * 32)
    j.close()
    with open(j.path, "ab") as fh:
        fh.write(b'{"n":2,"size":50,"md')  # kill -9 in the middle of a write
    header, parts = read(j.path)
    assert header is not None and list(parts) == [1]
    j2 = Journal.open("u", "b", "k", FileIdentity.of(f), tmp_path)
    j2.record(3, 50, "c" * 32)  # appending after a torn line still works
    j2.close()
    assert sorted(read(j.path)[1]) == [1, 3]


def test_changed_file_makes_journal_stale_and_rewrites(tmp_path: Path) -> None:
    f = _file(tmp_path)
    j = Journal.open("u", "b", "k", FileIdentity.of(f), tmp_path)
    j.record(1, 50, "a" * 32)
    j.close()
    os.utime(f, ns=(1, 1))  # same size, other mtime
    j2 = Journal.open("u", "b", "k", FileIdentity.of(f), tmp_path)
    assert j2.existed and j2.stale and j2.parts == {}
    j2.start()
    j2.close()
    header, parts = read(j2.path)
    assert header is not None and header["mtime_ns"] == 1 and parts == {}


def test_remove_and_garbage_file(tmp_path: Path) -> None:
    f = _file(tmp_path)
    path = journal_path("u", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage\n[1,2]\n")
    j = Journal.open("u", "b", "k", FileIdentity.of(f), tmp_path)
    assert not j.existed and j.parts == {}
    j.record(1, 1, "d" * 32)
    j.remove()
    assert not path.exists()


def test_journal_name_is_a_hash_of_the_upload_id(tmp_path: Path) -> None:
    p = journal_path("../../etc/passwd~2", tmp_path)
    assert p.parent == tmp_path / "journal" and "/" not in p.name and ".." not in p.name
