"""The files of a bundle on disk: opened only inside the folder, and the ones the bundle does not name.

Why a module of its own: a bundle comes from someone else, and its paths are judged twice. On
load (:func:`s3mpu.bundle.path_problem`) nothing absolute, no ``..``, no backslash passes. Here,
where only the disk can tell, a path that leaves the folder through a symlink, or names a
FIFO (opening one would hang), a device or a directory, is refused for that object (65) and
named; the other objects go on.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

from s3mpu.errors import DataError, NoInputError

#: open without following a FIFO's writer (it would block) or taking a terminal as ours
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows: there every path is resolved and judged


@dataclass(frozen=True)
class Opened:
    """An open regular file of the bundle: its descriptor, its real path and what fstat said."""

    fd: int
    path: str
    size: int
    st: os.stat_result


class Folder:
    """The folder a bundle's paths are relative to (its real path, resolved once)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.given = str(directory)
        p = Path(directory)
        if not p.exists():
            raise NoInputError(f"folder not found: {directory}", "Give the folder the bundle was planned from.")
        if not p.is_dir():
            raise NoInputError(f"{directory} is not a folder", "A bundle uploads a folder: s3mpu put BUNDLE DIR.")
        self.real = os.path.realpath(p)
        self._dirs: dict[str, str] = {}  # a bundle path's folder -> its real path, checked inside the folder

    def _inside(self, rel: str, real: str) -> str:
        if real != self.real and os.path.commonpath([real, self.real]) != self.real:
            raise DataError(f"{rel}: leaves the folder through a symlink (to {real}); not uploaded",
                            "Replace the link with the file itself, or remove it from the plan.")
        return real

    def resolve(self, rel: str) -> str:
        """The real path of ``rel`` (a bundle path), refused (65) when it leaves the folder."""
        return self._inside(rel, os.path.realpath(os.path.join(self.real, *rel.split("/"))))

    def _candidate(self, rel: str) -> str:
        """``rel`` under its folder's real path (resolved once per folder, not once per file)."""
        head, _, name = rel.rpartition("/")
        real_dir = self._dirs.get(head)
        if real_dir is None:
            real_dir = self._dirs[head] = self._inside(rel, os.path.realpath(os.path.join(self.real, *head.split("/")))
                                                       if head else self.real)
        return os.path.join(real_dir, name)

    def open(self, rel: str) -> Opened:
        """Open ``rel`` for reading: 66 when missing, 65 when it is not a regular file inside the folder.

        The file itself is opened with ``O_NOFOLLOW`` under its folder's real path; only when it
        is a symlink (ELOOP) is its target resolved and judged, so the common case costs no realpath.
        """
        real = self._candidate(rel) if _NOFOLLOW else self.resolve(rel)
        try:
            try:
                fd = os.open(real, _OPEN_FLAGS | _NOFOLLOW)
            except OSError as exc:
                if not _NOFOLLOW or exc.errno != errno.ELOOP:
                    raise
                real = self.resolve(rel)  # a symlink: where does it lead?
                fd = os.open(real, _OPEN_FLAGS)
        except FileNotFoundError:
            raise NoInputError(f"{rel}: missing from {self.given}; not uploaded",
                               "Put the file back (or re-plan without it), then re-run the same command.") from None
        except IsADirectoryError:
            raise DataError(f"{rel}: is a folder in {self.given}, not a file; not uploaded") from None
        except OSError as exc:
            raise NoInputError(f"{rel}: cannot open ({exc.strerror or exc}); not uploaded",
                               "Check its permissions, then re-run the same command.") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                        or stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else
                        "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
                raise DataError(f"{rel}: is {kind}, not a regular file; not uploaded")
            # O_NONBLOCK is ignored by regular files (POSIX): nothing to undo
        except BaseException:
            os.close(fd)
            raise
        return Opened(fd, real, st.st_size, st)


def count_unnamed(directory: str | os.PathLike[str], named: Container[str], limit: int = 10) -> tuple[int, list[str]]:
    """``(how many regular files under directory the bundle does not name, the first few of them)``.

    They are reported, never uploaded: a bundle grants exactly the files it lists. Symlinked
    folders are not followed, so a loop cannot make this run forever. The directory entries'
    types come with the listing (no ``lstat`` per file: this runs beside the upload's start,
    and each system call there is a GIL handoff among its workers).
    """
    n = 0
    first: list[str] = []
    todo = [(str(directory), "")]
    while todo:
        base, prefix = todo.pop()
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for entry in entries:
            rel = prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    todo.append((entry.path, rel + "/"))
                    continue
                if rel in named or not entry.is_file(follow_symlinks=False):
                    continue
            except OSError:
                continue
            n += 1
            if len(first) < limit:
                first.append(rel)
    return n, first


__all__ = ["Folder", "Opened", "count_unnamed"]
