"""One ``put`` at a time per upload on this machine: an ``flock``'d file beside the journal.

Why: two runs of one manifest (a cron job overrunning into the next night) send the same parts
at once; on rclone a part sent twice with other timing cannot be replaced and the upload is lost.
``fcntl.flock`` is released by the kernel when the holder dies (``kill -9`` included), so a
stale lock never blocks a re-run, and the holder's pid is written in the file for the message.
Across machines the supported way to share an upload is ``--parts`` (one range per machine).

Taking the lock is also the first write to the state directory, so an unusable one (read-only,
``~/.local/state`` being a file, ...) is reported here, before any byte is sent (exit 78).
"""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from s3mpu.errors import ConfigError, TempFailError
from s3mpu.user.journal import journal_path


class UploadLock:
    """Held while one process uploads parts of one upload id; ``release`` (or process death) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, upload_id: str, directory: Path | None = None) -> UploadLock:
        """Take the lock without waiting: 75 naming the holder's pid when another run has it, 78 when unusable."""
        path = journal_path(upload_id, directory).with_suffix(".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise unusable_state_dir(path.parent, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise unusable_state_dir(path.parent, exc) from None
            who = f"pid {holder}" if holder else "another process"
            raise TempFailError(f"another s3mpu put ({who}) is uploading this manifest; nothing was sent",
                                "Let it finish (or stop it), then re-run the same command; to share one upload "
                                "between machines, give each its own --parts range.") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError as exc:  # a full disk too: the journal could not be written either (78, not 75)
            os.close(fd)
            raise unusable_state_dir(path.parent, exc) from None
        return cls(path, fd)

    def release(self, forget: bool = False) -> None:
        """Unlock; ``forget`` also removes the file (the upload is finished: nothing will take it again)."""
        if self._fd is None:
            return
        if forget:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None

    def __enter__(self) -> UploadLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def unusable_state_dir(directory: Path, exc: OSError) -> ConfigError:
    """Exit 78 naming the directory and the way out (``XDG_STATE_HOME``)."""
    why = exc.strerror or str(exc)
    fix = "Free some space on that disk" if exc.errno == errno.ENOSPC else "Make it a writable directory"
    return ConfigError(f"cannot use the state directory {directory} for the resume journal ({why}); nothing was sent",
                       f"{fix}, or point XDG_STATE_HOME at a writable directory elsewhere "
                       "(e.g. XDG_STATE_HOME=$HOME/.s3mpu-state), then re-run the same command.")
