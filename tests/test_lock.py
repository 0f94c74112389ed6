"""The per-upload lock: one put at a time, released by the kernel, state dir problems are 78 before any byte."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from s3mpu.errors import ConfigError, TempFailError
from s3mpu.user.lock import UploadLock, process_start


def test_second_holder_is_refused_with_the_pid_and_release_frees_it(tmp_path: Path) -> None:
    first = UploadLock.acquire("up-1", tmp_path)
    with pytest.raises(TempFailError) as err:
        UploadLock.acquire("up-1", tmp_path)
    assert f"(pid {os.getpid()})" in err.value.message and "nothing was sent" in err.value.message
    UploadLock.acquire("up-2", tmp_path).release()  # another upload id: another lock
    first.release()
    again = UploadLock.acquire("up-1", tmp_path)
    assert again.path.read_text().strip() == str(os.getpid())
    again.release(forget=True)  # a finished upload's lock file goes
    assert not again.path.exists()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    code = ("import os, sys; from pathlib import Path; from s3mpu.user.lock import UploadLock; "
            f"UploadLock.acquire('up-9', Path({str(tmp_path)!r})); print('held', flush=True); os._exit(9)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "held" and proc.returncode == 9
    UploadLock.acquire("up-9", tmp_path).release()  # the kernel released it with the process


def test_full_disk_at_start_is_78_naming_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_a: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("s3mpu.user.lock.os.pwrite", full)
    with pytest.raises(ConfigError) as err:
        UploadLock.acquire("up-3", tmp_path)
    assert err.value.exit_code == 78 and str(tmp_path / "journal") in err.value.message
    assert "No space left" in err.value.message and "Free some space" in err.value.hint
    assert "XDG_STATE_HOME" in err.value.hint


# -- the lock-file mechanism (no fcntl, not Windows): forced here by choosing it ------------------------

@pytest.fixture
def lockfile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("s3mpu.user.lock.MECHANISM", "lockfile")


def _plant(tmp_path: Path, upload_id: str, text: str, age: float = 0.0) -> Path:
    from s3mpu.user.journal import journal_path

    path = journal_path(upload_id, tmp_path).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if age:
        t = path.stat().st_mtime - age
        os.utime(path, (t, t))
    return path


def _record(pid: int, host: str | None = None, start: str | None = "auto") -> str:
    import json
    import socket

    return json.dumps({"pid": pid, "host": host or socket.gethostname(),
                       "start": process_start(pid) if start == "auto" else start, "since": "2026-12-04T10:00:00Z"})


def test_lockfile_holder_refused_then_released(tmp_path: Path, lockfile: None) -> None:
    first = UploadLock.acquire("lf-1", tmp_path)
    assert f'"pid": {os.getpid()}' in first.path.read_text()
    with pytest.raises(TempFailError) as err:
        UploadLock.acquire("lf-1", tmp_path)
    assert err.value.exit_code == 75 and f"(pid {os.getpid()})" in err.value.message
    first.release()
    assert not first.path.exists()  # the file is the lock: releasing removes it
    UploadLock.acquire("lf-1", tmp_path).release()


def test_lockfile_of_a_dead_process_is_replaced(tmp_path: Path, lockfile: None) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)
    _plant(tmp_path, "lf-2", _record(pid, start="123"))
    lock = UploadLock.acquire("lf-2", tmp_path)
    assert lock.replaced is not None and f"pid {pid}, no longer running" in lock.replaced
    assert f'"pid": {os.getpid()}' in lock.path.read_text()
    lock.release()


def test_lockfile_of_a_killed_unreaped_process_is_replaced(tmp_path: Path, lockfile: None) -> None:
    """kill -9 leaves a zombie until its parent waits: it holds a pid but no longer runs."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _plant(tmp_path, "lf-3", _record(proc.pid))
        with pytest.raises(TempFailError):
            UploadLock.acquire("lf-3", tmp_path)  # alive: refused
        proc.kill()
        for _ in range(200):
            if process_start(proc.pid) == "dead":
                break
            threading.Event().wait(0.01)
        lock = UploadLock.acquire("lf-3", tmp_path)
        assert lock.replaced and "no longer running" in lock.replaced
        lock.release()
    finally:
        proc.kill()
        proc.wait()


def test_lockfile_with_a_reused_pid_is_replaced(tmp_path: Path, lockfile: None) -> None:
    """Our own pid, but recorded with another start time: the pid was reused, the holder is gone."""
    _plant(tmp_path, "lf-4", _record(os.getpid(), start="1"))
    lock = UploadLock.acquire("lf-4", tmp_path)
    assert lock.replaced and "the pid now belongs to another process" in lock.replaced
    lock.release()


def test_lockfile_from_another_host_is_refused_naming_host_and_file(tmp_path: Path, lockfile: None) -> None:
    path = _plant(tmp_path, "lf-5", _record(4242, host="laptop-elsewhere", start=None))
    with pytest.raises(TempFailError) as err:
        UploadLock.acquire("lf-5", tmp_path)
    assert err.value.exit_code == 75
    assert "(pid 4242 on host laptop-elsewhere)" in err.value.message
    assert str(path) in err.value.hint and "delete" in err.value.hint
    assert path.exists()  # never removed from here: that host's run may be alive


def test_lockfile_that_is_not_ours_is_78_naming_it(tmp_path: Path, lockfile: None) -> None:
    path = _plant(tmp_path, "lf-6", "hello, not json")
    with pytest.raises(ConfigError) as err:
        UploadLock.acquire("lf-6", tmp_path)
    assert err.value.exit_code == 78 and str(path) in err.value.message and "not an s3mpu lock" in err.value.message
    assert "delete that file" in err.value.hint


def test_lockfile_that_cannot_be_read_is_78_naming_it(tmp_path: Path, lockfile: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = _plant(tmp_path, "lf-7", _record(os.getpid()))
    real = Path.read_text

    def denied(self: Path, *a: object, **k: object) -> str:
        if self == path:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(ConfigError) as err:
        UploadLock.acquire("lf-7", tmp_path)
    assert err.value.exit_code == 78 and f"cannot read the lock file {path} (Permission denied)" in err.value.message


def test_empty_lockfile_is_a_starting_run_then_stale(tmp_path: Path, lockfile: None) -> None:
    path = _plant(tmp_path, "lf-8", "")
    with pytest.raises(TempFailError, match="a run that is starting"):
        UploadLock.acquire("lf-8", tmp_path)
    _plant(tmp_path, "lf-8", "", age=60)
    lock = UploadLock.acquire("lf-8", tmp_path)
    assert lock.replaced and "an empty lock file" in lock.replaced and path.exists()
    lock.release()


def test_windows_never_probes_a_pid_with_kill(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.kill(pid, 0) terminates the process on Windows: the check must not call it there."""
    from s3mpu.user import lock

    def boom(*_a: object) -> None:
        raise AssertionError("os.kill called")

    monkeypatch.setattr(lock, "WINDOWS", True)
    monkeypatch.setattr(lock.os, "kill", boom)
    assert lock.pid_alive(12345) is True
