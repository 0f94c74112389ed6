"""Part sources without a network: how a stream is cut, held back, checked and bounded in memory."""
from __future__ import annotations

import hashlib
import io
import threading
from typing import Any

import pytest

from s3mpu.errors import DataError, UsageError
from s3mpu.manifest import Manifest, Part
from s3mpu.user.progress import PlainProgress
from s3mpu.user.sources import StreamSource
from offline_manifest import offline_manifest

KiB = 1024
PS = 64 * KiB  # a small part size: the source does not care about S3's 5 MiB minimum


def _manifest(size: int, part_size: int = PS, is_max: bool = True) -> Manifest:
    return offline_manifest(size, part_size, is_max)


def _tail(p: Part, total: int) -> str:
    return f"{p.url}?tail={total}"


def _drain(src: StreamSource, held: dict[int, tuple[int, str]] | None = None) -> list[tuple[int, int, str, bytes]]:
    """Every task as (number, size, url, bytes), releasing each buffer as the engine would."""
    out = []
    for t in src.tasks(held or {}, True, threading.Event(), _tail):
        assert t.data is not None
        out.append((t.number, t.size, t.url, bytes(t.data)))
        src.release(t)
    return out


@pytest.mark.parametrize("size", [0, 1, PS - 1, PS, PS + 1, 3 * PS, 3 * PS + 5])
def test_stream_is_cut_into_manifest_parts_short_tail_gets_tail_url(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    m = _manifest(10 * PS)
    src = StreamSource(io.BytesIO(data), m, memory=4 * PS)
    tasks = _drain(src)
    assert b"".join(t[3] for t in tasks) == data and src.size == size == src.bytes_read
    assert [t[0] for t in tasks] == list(range(1, max(1, -(-size // PS)) + 1))
    *full, last = tasks
    assert all(t[1] == PS and t[2] == m.part(t[0]).url for t in full)
    if last[1] == PS:  # the stream ended on a part boundary: the full part's own URL
        assert last[2] == m.part(last[0]).url
    else:  # shorter: the URL comes from the relay (/v1/tail), asked with the stream's total length
        assert last[2] == f"{m.part(last[0]).url}?tail={size}"
    assert src.parts(m, None) == (m.parts_for_file(size), m.parts_for_file(size))


def test_buffers_bound_memory_and_are_reused() -> None:
    m = _manifest(40 * PS)
    src = StreamSource(io.BytesIO(b"z" * (10 * PS)), m, memory=3 * PS + 7)
    assert src.buffers == 3
    # memory to spare: no more buffers than the parts in flight (jobs) plus the one being read
    assert StreamSource(io.BytesIO(b""), m, memory=40 * PS, jobs=2).buffers == 3
    assert StreamSource(io.BytesIO(b""), _manifest(2 * PS), memory=40 * PS, jobs=8).buffers == 2  # 2 parts at most
    gen = src.tasks({}, True, threading.Event(), _tail)
    held = [next(gen) for _ in range(3)]  # three parts in flight: every buffer is taken
    assert src._made == 3
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(next(gen)))
    t.start()
    t.join(0.3)
    assert t.is_alive() and not got  # the reader waits: no fourth buffer is made
    src.release(held[0])
    t.join(10)
    assert got and got[0].number == 4 and src._made == 3
    seen: list[int] = [x.number for x in held[1:] + got]
    for x in held[1:] + got:
        src.release(x)
    for x in gen:
        seen.append(x.number)
        src.release(x)
    assert seen == list(range(2, 11))


def test_memory_below_one_part_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cannot hold one part") as exc:
        StreamSource(io.BytesIO(b""), _manifest(4 * PS), memory=PS - 1)
    assert exc.value.exit_code == 64 and "--memory" in exc.value.hint


def test_too_long_stream_stops_reading_and_never_sends_the_extra() -> None:
    m = _manifest(2 * PS)
    stream = io.BytesIO(b"a" * (5 * PS))
    src = StreamSource(stream, m, memory=8 * PS)
    sent: list[int] = []
    with pytest.raises(DataError, match=f"reading stopped after {2 * PS} bytes; nothing was completed"):
        for t in src.tasks({}, True, threading.Event(), _tail):
            sent.append(t.number)
            src.release(t)
    assert sent == [1]  # part 2 was full but not followed by an end: it was not handed out
    assert stream.tell() == 2 * PS + 1  # stopped one byte past the maximum


@pytest.mark.parametrize("case", ["exact-short", "expect-size", "expect-sha256"])
def test_wrong_end_holds_back_the_last_part(case: str) -> None:
    data = b"q" * (2 * PS + 10)
    if case == "exact-short":
        src = StreamSource(io.BytesIO(data), _manifest(2 * PS + 11, is_max=False), memory=8 * PS)
        match = "ended after 131082 bytes, but the manifest is for exactly 131083"
    elif case == "expect-size":
        src = StreamSource(io.BytesIO(data), _manifest(8 * PS), memory=8 * PS, expect_size=2 * PS + 11)
        match = "not the 131083 of --expect-size"
    else:
        src = StreamSource(io.BytesIO(data), _manifest(8 * PS), memory=8 * PS, expect_sha256="0" * 64)
        match = "SHA-256 is " + hashlib.sha256(data).hexdigest()
    sent: list[int] = []
    with pytest.raises(DataError, match=match):
        for t in src.tasks({}, True, threading.Event(), _tail):
            sent.append(t.number)
            src.release(t)
    assert sent == [1, 2]  # the full parts; the last one (3) never left


def test_expect_sha256_match_sends_everything() -> None:
    data = b"r" * (PS + 3)
    src = StreamSource(io.BytesIO(data), _manifest(8 * PS), memory=8 * PS,
                       expect_sha256=hashlib.sha256(data).hexdigest().upper())
    assert b"".join(t[3] for t in _drain(src)) == data


def test_held_md5_only_for_the_same_size() -> None:
    data = b"h" * (PS + 3)
    held = {1: (PS, "aa"), 2: (PS, "bb")}  # part 2 on the server is a full part; ours is 3 bytes
    src = StreamSource(io.BytesIO(data), _manifest(8 * PS), memory=8 * PS)
    tasks = list(src.tasks(held, True, threading.Event(), _tail))
    assert [(t.number, t.held_md5) for t in tasks] == [(1, "aa"), (2, None)]


def test_parts_subset_is_refused_for_a_stream() -> None:
    src = StreamSource(io.BytesIO(b""), _manifest(8 * PS), memory=8 * PS)
    with pytest.raises(UsageError, match="--parts needs a file"):
        src.parts(src.m, "1-2")


def test_plain_progress_for_unknown_size_has_no_percentage_or_eta() -> None:
    out = io.StringIO()
    now = [0.0]
    p = PlainProgress(out, interval=5.0, clock=lambda: now[0], label="db.dump")
    p.start(None, 0, None)
    p.read(3 * 1024 * 1024)
    p.advance(2 * 1024 * 1024, 1)
    p.part_finished(1, True)
    now[0] = 6.0
    p.read(1)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "uploading db.dump: standard input (size unknown until it ends)"
    assert lines[1].startswith("3.0 MiB read  2.0 MiB sent  parts 1  ")
    assert all("%" not in x and "ETA" not in x for x in lines)
    assert lines[-1] == "sent 2.0 MiB in 6.0s (341.3 KiB/s), 1 part"


def test_upload_refuses_stream_only_options_for_files_and_parts_for_streams(tmp_path: Any) -> None:
    from s3mpu.user.upload import upload

    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 10)
    with pytest.raises(UsageError, match="--expect-size and --expect-sha256 are for standard input"):
        upload(_manifest(10, is_max=False), f, expect_size=10, state_dir=tmp_path)
    with pytest.raises(UsageError, match="--parts needs a file"):
        upload(_manifest(8 * PS), io.BytesIO(b"x"), parts="1", memory=8 * PS, state_dir=tmp_path)
    with pytest.raises(UsageError, match="--expect-size 99 does not fit"):
        upload(_manifest(10, is_max=False), io.BytesIO(b"x"), expect_size=99, memory=8 * PS, state_dir=tmp_path)
    with pytest.raises(UsageError, match="64 hex digits"):
        upload(_manifest(8 * PS), io.BytesIO(b"x"), expect_sha256="abc", memory=8 * PS, state_dir=tmp_path)
