"""s3mpu.compat: the portable fallbacks give the same bytes as the fast calls, keys use '/', state dirs per platform."""
from __future__ import annotations

import os
import random
import signal
import threading
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from s3mpu import compat
from s3mpu.user.journal import state_dir


@pytest.fixture
def blob(tmp_path: Path) -> tuple[Path, bytes]:
    data = random.Random(21).randbytes(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    return path, data


def _read_everywhere(fd: int, data: bytes, reader: object, threads: int = 6) -> None:
    """Many threads read random ranges at once: with a shared file position they would interleave."""
    errors: list[str] = []

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        buf = bytearray(64 * 1024)
        for _ in range(200):
            off = rnd.randrange(0, len(data))
            n = reader(fd, memoryview(buf), off)  # type: ignore[operator]
            if bytes(buf[:n]) != data[off:off + n] or n != min(len(buf), len(data) - off):
                errors.append(f"offset {off}: got {n} bytes, wrong")
                return

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


def test_per_thread_handles_read_right_concurrently(blob: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    path, data = blob
    monkeypatch.setattr(compat, "HAVE_PREAD", False)  # open_data registers the path for the workers' handles
    fd = compat.open_data(path)
    try:
        assert fd in compat._paths
        _read_everywhere(fd, data, compat._pread_fallback)
    finally:
        compat.close_data(fd)
    assert fd not in compat._paths


def test_unregistered_descriptor_reads_under_a_lock(blob: tuple[Path, bytes]) -> None:
    path, data = blob
    fd = os.open(path, os.O_RDONLY)  # not from open_data: seek + read, serialised per descriptor
    try:
        _read_everywhere(fd, data, compat._pread_fallback)
    finally:
        os.close(fd)


def test_pread_copy_and_preadv_agree(blob: tuple[Path, bytes]) -> None:
    path, data = blob
    fd = os.open(path, os.O_RDONLY)
    try:
        _read_everywhere(fd, data, compat._pread_copy, threads=3)
        _read_everywhere(fd, data, compat._preadv, threads=3)
        assert compat.pread_into is compat._preadv  # Linux keeps the fast call
    finally:
        os.close(fd)


def test_reopened_descriptor_number_gets_a_fresh_handle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed fd's number reused for another file must not read through the old file's handle."""
    monkeypatch.setattr(compat, "HAVE_PREAD", False)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"A" * 100)
    b.write_bytes(b"B" * 100)
    buf = bytearray(10)
    fd = compat.open_data(a)
    assert compat._pread_fallback(fd, memoryview(buf), 0) == 10 and bytes(buf) == b"A" * 10
    compat.close_data(fd)
    fd2 = compat.open_data(b)
    try:
        assert fd2 == fd  # the lowest free number again
        assert compat._pread_fallback(fd2, memoryview(buf), 0) == 10 and bytes(buf) == b"B" * 10
    finally:
        compat.close_data(fd2)


@pytest.mark.parametrize("rel, key", [
    (PureWindowsPath(r"cam\day1\a.mov"), "cam/day1/a.mov"),
    (PureWindowsPath("cam/day1/a.mov"), "cam/day1/a.mov"),
    (PurePosixPath("cam/day1/a.mov"), "cam/day1/a.mov"),
    (PureWindowsPath(r"x.bin"), "x.bin"),
    ("dir/x.bin", "dir/x.bin"),
])
def test_keys_always_use_slashes(rel: object, key: str) -> None:
    assert compat.key_path(rel) == key  # type: ignore[arg-type]


@pytest.mark.parametrize("rel", [PureWindowsPath(r"C:\data\x.bin"), PureWindowsPath(r"\\server\share\x.bin"),
                                 PureWindowsPath(r"C:x.bin"), PureWindowsPath(r"..\x.bin"), PurePosixPath("/etc/x"),
                                 PurePosixPath(".")])
def test_paths_that_cannot_be_keys_are_refused(rel: object) -> None:
    with pytest.raises(ValueError, match="not a relative path"):
        compat.key_path(rel)  # type: ignore[arg-type]


@pytest.mark.parametrize("platform, env, expected", [
    ("linux", {"HOME": "/home/u"}, "/home/u/.local/state/s3mpu"),
    ("linux", {"HOME": "/home/u", "XDG_STATE_HOME": "/st"}, "/st/s3mpu"),
    ("darwin", {"HOME": "/Users/u"}, "/Users/u/Library/Application Support/s3mpu"),
    ("win32", {"LOCALAPPDATA": "/c/Users/u/AppData/Local"}, "/c/Users/u/AppData/Local/s3mpu/state"),
    ("win32", {"USERPROFILE": "/c/Users/u"}, "/c/Users/u/AppData/Local/s3mpu/state"),
    ("win32", {"XDG_STATE_HOME": "/st", "LOCALAPPDATA": "/x"}, "/st/s3mpu"),
])
def test_state_dir_is_the_platforms(platform: str, env: dict[str, str], expected: str) -> None:
    assert state_dir(env, platform) == Path(expected)


def test_ctrl_break_stops_like_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows' SIGBREAK, stood in for by SIGUSR1 here: it raises KeyboardInterrupt (clean stop), not death."""
    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    old = signal.getsignal(signal.SIGUSR1)
    try:
        compat.install_break_handler()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(100):  # the handler runs in the main thread between bytecodes
                threading.Event().wait(0.01)
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_private_write_without_fchmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where fchmod is missing (or meaningless: Windows) the manifest is still written, atomically."""
    from s3mpu.manifest import write_private

    monkeypatch.setattr(compat, "HAVE_FCHMOD", False)
    write_private(tmp_path / "m.json", '{"x": 1}\n')
    assert (tmp_path / "m.json").read_text() == '{"x": 1}\n'


def test_stdin_is_switched_to_binary_on_windows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    class FakeMsvcrt:
        @staticmethod
        def setmode(fd: int, mode: int) -> None:
            calls.append((fd, mode))

    monkeypatch.setattr(compat.importlib, "import_module", lambda name: FakeMsvcrt if name == "msvcrt" else None)
    compat.binary_stdin()
    assert calls == []  # Linux: nothing to do
    monkeypatch.setattr(compat, "WINDOWS", True)
    monkeypatch.setattr(compat, "O_BINARY", 0x8000)
    compat.binary_stdin()
    assert calls == [(0, 0x8000)]
