"""One ``put`` at a time per upload on this machine: a lock file beside the journal.

Why: two runs of one manifest (a cron job overrunning into the next night) send the same parts
at once; on rclone a part sent twice with other timing cannot be replaced and the upload is lost.
Across machines the supported way to share an upload is ``--parts`` (one range per machine).

How, chosen once at import (:data:`MECHANISM`):

- ``flock`` (Linux, macOS, BSD): ``fcntl.flock`` is released by the kernel when the holder dies
  (``kill -9`` included), so a stale lock never blocks a re-run; the holder's pid is written in
  the file for the message.
- ``msvcrt`` (Windows): ``msvcrt.locking`` on one byte far past the pid, released by the OS
  with the process too. (Never ``os.kill(pid, 0)``: on Windows that terminates the process.)
- ``lockfile`` (anything else without ``fcntl``): the file itself is the lock, created
  exclusively with the holder's pid, host and process start time. A lock whose process is gone
  (or whose pid now belongs to a process started later) is stale and replaced; one from another
  host (a shared home directory) cannot be judged from here and is refused, naming the file.

Taking the lock is also the first write to the state directory, so an unusable one (read-only,
``~/.local/state`` being a file, ...) is reported here, before any byte is sent (exit 78).
"""
from __future__ import annotations

import errno
import importlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from s3mpu.compat import O_BINARY, WINDOWS, fcntl
from s3mpu.errors import ConfigError, TempFailError
from s3mpu.user.journal import journal_path

msvcrt: Any
try:
    msvcrt = importlib.import_module("msvcrt")  # Windows only (typed per platform: Any here)
except ImportError:
    msvcrt = None

MECHANISM = "flock" if fcntl is not None else "msvcrt" if WINDOWS and msvcrt is not None else "lockfile"
#: msvcrt locks this byte (far past the pid, which the refused run must still be able to read)
_MSVCRT_BYTE = 1 << 30
#: an empty lock file younger than this may be one being written (the O_EXCL fallback)
_EMPTY_GRACE = 10.0


class UploadLock:
    """Held while one process uploads parts of one upload id; ``release`` (or process death) frees it."""

    def __init__(self, path: Path, fd: int | None, owner: str | None = None) -> None:
        self.path = path
        self._fd: int | None = fd
        self._owner = owner  # the lockfile mechanism: this run's record, to remove only our own lock
        self.replaced: str | None = None  # a stale lock this run took over, in words

    @classmethod
    def acquire(cls, upload_id: str, directory: Path | None = None) -> UploadLock:
        """Take the lock without waiting: 75 naming the holder when another run has it, 78 when unusable."""
        path = journal_path(upload_id, directory).with_suffix(".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise unusable_state_dir(path.parent, exc) from None
        if MECHANISM == "lockfile":
            return _acquire_lockfile(cls, path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | O_BINARY, 0o600)
        except OSError as exc:
            raise unusable_state_dir(path.parent, exc) from None
        try:
            if MECHANISM == "flock":
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                os.lseek(fd, _MSVCRT_BYTE, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.EDEADLK):
                raise unusable_state_dir(path.parent, exc) from None
            raise busy(f"pid {holder}" if holder else "another process") from None
        try:
            os.ftruncate(fd, 0)
            if MECHANISM == "flock":
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            else:
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        except OSError as exc:  # a full disk too: the journal could not be written either (78, not 75)
            os.close(fd)
            raise unusable_state_dir(path.parent, exc) from None
        return cls(path, fd)

    def release(self, forget: bool = False) -> None:
        """Unlock; ``forget`` also removes the file (the upload is finished: nothing will take it again)."""
        if self._owner is not None:
            _remove_if_ours(self.path, self._owner)
            self._owner = None
            return
        if self._fd is None:
            return
        if MECHANISM == "msvcrt":  # Windows cannot delete an open file: unlock, close, then forget
            try:
                os.lseek(self._fd, _MSVCRT_BYTE, os.SEEK_SET)
                msvcrt.locking(self._fd, msvcrt.LK_UNLCK, 1)
            except OSError:
                pass  # closing releases it too
            os.close(self._fd)
            self._fd = None
            if forget:
                try:
                    self.path.unlink(missing_ok=True)
                except OSError:
                    pass  # another run opened it meanwhile: it is theirs now
            return
        if forget:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None

    def __enter__(self) -> UploadLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def busy(who: str, hint: str | None = None) -> TempFailError:
    """75: another run holds the lock (nothing was sent)."""
    return TempFailError(f"another s3mpu put ({who}) is uploading this manifest; nothing was sent",
                         hint or "Let it finish (or stop it), then re-run the same command; to share one upload "
                         "between machines, give each its own --parts range.")


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# -- the lock-file mechanism (no fcntl, not Windows) ------------------------------------------------

def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as the kernel counts it (Linux ``/proc``), to tell a reused pid; None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state is field 3, starttime field 22
    if fields and fields[0] in ("Z", "X"):
        return "dead"  # a zombie: killed, not yet reaped by its parent
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    """Is ``pid`` a running process on this host? POSIX only: on Windows the msvcrt lock is used instead."""
    if WINDOWS:
        return True  # never os.kill(pid, 0) there: it would terminate the process; "alive" refuses safely
    if process_start(pid) == "dead":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, owned by someone else
    return True


def _record() -> str:
    me = os.getpid()
    return json.dumps({"pid": me, "host": socket.gethostname(), "start": process_start(me),
                       "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n"


def judge(text: str, age: float, path: Path, host: str | None = None) -> tuple[bool, str]:
    """``(stale, the holder in words)`` for a lock file's contents; raises 78 for a file that is no lock of ours."""
    here = host or socket.gethostname()
    if not text.strip():
        if age > _EMPTY_GRACE:
            return True, "an empty lock file"
        return False, "a run that is starting"
    try:
        rec: Any = json.loads(text)
        pid, owner_host, start = int(rec["pid"]), str(rec["host"]), rec.get("start")
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"the lock file {path} is not an s3mpu lock (unreadable contents); nothing was sent",
                          "If no other s3mpu put of this manifest is running, delete that file and re-run.") from None
    who = f"pid {pid}"
    if owner_host != here:
        return False, f"pid {pid} on host {owner_host}"
    if not pid_alive(pid):
        return True, f"{who}, no longer running"
    now = process_start(pid)
    if start is not None and now is not None and str(start) != now:
        return True, f"{who}, no longer running (the pid now belongs to another process)"
    return False, who


def _create(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` atomically and exclusively: False when it already exists."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(text.encode("utf-8"))
    try:
        os.link(tmp, path)  # atomic: the lock never exists half-written
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links on this filesystem: exclusive create, then write
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_BINARY, 0o600)
        except FileExistsError:
            return False
        try:
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _acquire_lockfile(cls: type[UploadLock], path: Path) -> UploadLock:
    mine = _record()
    replaced = None
    for _ in range(5):
        try:
            if _create(path, mine):
                lock = cls(path, None, mine)
                lock.replaced = replaced
                return lock
            st = path.stat()
            text = path.read_text("utf-8", "replace")
        except FileNotFoundError:
            continue  # the holder just released it: try again
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM) and path.exists():
                raise ConfigError(f"cannot read the lock file {path} ({exc.strerror}); nothing was sent",
                                  "If no other s3mpu put of this manifest is running, delete that file (or fix its "
                                  "permissions) and re-run.") from None
            raise unusable_state_dir(path.parent, exc) from None
        stale, who = judge(text, time.time() - st.st_mtime, path)
        if not stale:
            hint = (f"If that run is gone (a shared home directory, host {who.split('host ')[-1]}), delete {path} and "
                    "re-run; to share one upload between machines, give each its own --parts range."
                    if " on host " in who else None)
            raise busy(who, hint)
        replaced = f"a stale lock ({who}) in {path}"
        aside = path.with_name(f"{path.name}.stale.{os.getpid()}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            continue
        if aside.read_text("utf-8", "replace") != text:  # another run replaced it first: give theirs back
            try:
                os.link(aside, path)
            except OSError:
                pass
        aside.unlink(missing_ok=True)
    raise busy("another process", "Several runs are starting at once; let one finish, then re-run the same command.")


def _remove_if_ours(path: Path, owner: str) -> None:
    try:
        if path.read_text("utf-8", "replace") == owner:
            path.unlink()
    except OSError:
        pass


def unusable_state_dir(directory: Path, exc: OSError) -> ConfigError:
    """Exit 78 naming the directory and the way out (``XDG_STATE_HOME``)."""
    why = exc.strerror or str(exc)
    fix = "Free some space on that disk" if exc.errno == errno.ENOSPC else "Make it a writable directory"
    return ConfigError(f"cannot use the state directory {directory} for the resume journal ({why}); nothing was sent",
                       f"{fix}, or point XDG_STATE_HOME at a writable directory elsewhere "
                       "(e.g. XDG_STATE_HOME=$HOME/.s3mpu-state), then re-run the same command.")
