"""The per-upload lock: one put at a time, released by the kernel, state dir problems are 78 before any byte."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from s3mpu.errors import ConfigError, TempFailError
from s3mpu.user.lock import UploadLock


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
