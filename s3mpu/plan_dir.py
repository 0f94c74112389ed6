"""Directory plans (``s3mpu plan DIR``): every regular file of a folder, for a bundle (SPEC §8).

A directory plan lists each file as its path relative to the folder (``/``-separated, the name
exactly as stored on disk: NFC or NFD is kept, never normalised, since the key must name the
same bytes the user sees), its size, its part size, and (unless ``sizes_only``) the MD5 of
each part and the SHA-256 of the file. The admin mints a bundle from it
(``s3mpu mint s3://B/PREFIX/ --plan DIRPLAN``); with MD5s every URL signs its Content-MD5, so
S3 itself refuses other bytes.

Why the walk refuses rather than skips some names: a path that is not valid UTF-8, or too long
for a key, cannot become the object the user expects; leaving it out silently would hand over
a folder with a hole. Symlinks and special files are skipped with a notice (``follow_symlinks``
follows links that stay inside the folder and refuses the others, and loops).

This module ships in the user-side zipapp: no click or rich, and it imports on Python 3.10.
Hashing runs on a thread pool (hashlib releases the GIL) over a bounded window of files, so a
100,000-file tree is planned without holding file contents, or one future per file, in memory.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from functools import cache
from importlib import resources
from typing import Any

from s3mpu.bundle import MAX_KEY_BYTES, MAX_OBJECTS, path_problem
from s3mpu.errors import DataError, ManifestError, NoInputError
from s3mpu.layout import auto_part_size, check_part_size, part_count, plan_parts

FORMAT = "s3mpu.dirplan/1"
_CHUNK = 1 << 20

#: ``(kind, glob)`` with kind "exclude" or "include": aws-cli's --exclude/--include, in order
Filter = tuple[str, str]
#: ``progress(done_bytes, total_bytes, done_files, total_files)``, called from worker threads
DirProgress = Callable[[int, int, int, int], None]


class DirPlanError(ManifestError):
    """A malformed directory plan (exit 65); ``field`` names the offending JSON path."""

    def __init__(self, message: str, field: str = "", hint: str = "") -> None:
        super().__init__(message, field, hint or "Make a fresh plan with: s3mpu plan DIR -o PLAN")


@dataclass(frozen=True)
class DirPlanFile:
    """One file of the folder; ``md5s``/``sha256`` are None in a sizes-only plan."""

    path: str
    size: int
    part_size: int
    md5s: tuple[str, ...] | None = None
    sha256: str | None = None

    @property
    def parts(self) -> int:
        return part_count(self.size, self.part_size)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "part_size": self.part_size,
                "md5s": list(self.md5s) if self.md5s is not None else None, "sha256": self.sha256}


@dataclass(frozen=True)
class DirPlan:
    """Every file of a folder, in walk order (sorted by name, depth first)."""

    files: tuple[DirPlanFile, ...]
    sizes_only: bool = False
    created_at: str | None = None
    format: str = FORMAT

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "created_at": self.created_at, "sizes_only": self.sizes_only,
                "files": [f.to_dict() for f in self.files]}

    def to_json(self) -> str:
        """One file a line, each through json's C encoder: a 100,000-file plan writes in well under a second."""
        head = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in
                          (("format", self.format), ("created_at", self.created_at), ("sizes_only", self.sizes_only)))
        body = ",\n  ".join(json.dumps(f.to_dict()) for f in self.files)
        return "{\n" + head + ',\n "files": [\n  ' + body + "\n ]\n}\n"

    @classmethod
    def from_dict(cls, data: Any) -> DirPlan:
        validate(data)
        files = tuple(DirPlanFile(f["path"], f["size"], f["part_size"],
                                  tuple(f["md5s"]) if f.get("md5s") is not None else None, f.get("sha256"))
                      for f in data["files"])
        return cls(files=files, sizes_only=data["sizes_only"], created_at=data.get("created_at"))


# -- the walk ---------------------------------------------------------------------------
def _shown(rel: str) -> str:
    """A path for a message: undecodable bytes shown as escapes, never as lone surrogates."""
    return repr(os.fsencode(rel))[2:-1] if not _utf8(rel) else rel


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def included(path: str, filters: Sequence[Filter]) -> bool:
    """aws-cli's rule: everything is included, then each filter in order; the last that matches wins."""
    keep = True
    for kind, pattern in filters:
        if fnmatchcase(path, pattern):
            keep = kind == "include"
    return keep


def walk(root: str | os.PathLike[str], *, filters: Sequence[Filter] = (), follow_symlinks: bool = False,
         notice: Callable[[str], None] | None = None) -> Iterator[tuple[str, str, int]]:
    """Yield ``(relative path, path on disk, size)`` of every regular file to plan, sorted by name.

    Refuses (65) a name that is not UTF-8 or too long for a key, a followed link that leaves
    the folder or loops; skips (with ``notice``) other symlinks, FIFOs, devices and sockets.
    """
    say = notice or (lambda _msg: None)
    top = os.path.realpath(root)
    try:
        st = os.stat(top)
    except OSError as exc:
        raise NoInputError(f"cannot read folder {root}: {exc.strerror or exc}", "Check the path.") from None
    if not stat.S_ISDIR(st.st_mode):
        raise NoInputError(f"{root} is not a folder")
    # (path on disk, relative path prefix, the (dev, inode) of the folders above: a loop refers back to one)
    stack: list[tuple[str, str, frozenset[tuple[int, int]]]] = [(top, "", frozenset({(st.st_dev, st.st_ino)}))]
    while stack:
        here, rel_dir, chain = stack.pop()
        try:
            with os.scandir(here) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise NoInputError(f"cannot read folder {_shown(rel_dir) or root}: {exc.strerror or exc}") from None
        subdirs = []
        for entry in entries:
            rel = rel_dir + entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise NoInputError(f"cannot read {_shown(rel)}: {exc.strerror or exc}") from None
            if stat.S_ISLNK(st.st_mode):
                if not follow_symlinks:
                    say(f"skipped symlink {_shown(rel)} (use --follow-symlinks to follow it)")
                    continue
                st = _follow(top, entry.path, rel)
            if stat.S_ISDIR(st.st_mode):
                ident = (st.st_dev, st.st_ino)
                if ident in chain:
                    raise DataError(f"{_shown(rel)} leads back into a folder above it (a symlink loop)",
                                    "Remove the loop, or plan without --follow-symlinks.")
                subdirs.append((entry.path, rel + "/", chain | {ident}))
            elif stat.S_ISREG(st.st_mode):
                if included(rel, filters):
                    _check_name(rel)
                    yield rel, entry.path, st.st_size
            else:
                say(f"skipped {_kind(st.st_mode)} {_shown(rel)} (only regular files are uploaded)")
        stack.extend(reversed(subdirs))  # depth first, in name order


def _follow(top: str, path: str, rel: str) -> os.stat_result:
    target = os.path.realpath(path)
    if os.path.commonpath([top, target]) != top:
        raise DataError(f"symlink {_shown(rel)} leads outside the folder (to {_shown(target)})",
                        "Copy the file into the folder, or plan without --follow-symlinks (links are then skipped).")
    try:
        return os.stat(target)
    except OSError as exc:
        raise NoInputError(f"symlink {_shown(rel)} leads nowhere ({exc.strerror or exc})",
                           "Remove or fix the link, or plan without --follow-symlinks.") from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def _check_name(rel: str) -> None:
    why = path_problem(rel)
    if why:
        raise DataError(f"cannot plan {_shown(rel)}: its name {why}",
                        "Rename the file (S3 keys are UTF-8), or leave it out with --exclude.")
    n = len(rel.encode("utf-8"))
    if n > MAX_KEY_BYTES:
        raise DataError(f"cannot plan {_shown(rel)[:80]}...: its path is {n} bytes, over S3's {MAX_KEY_BYTES}-byte "
                        "key limit", "Shorten the path, or leave the file out with --exclude.")


# -- hashing ----------------------------------------------------------------------------
def hash_file(path: str, rel: str, size: int, part_size: int,
              advance: Callable[[int], None] | None = None) -> tuple[tuple[str, ...], str]:
    """Per-part MD5s and the file's SHA-256 in one streamed pass (1 MiB chunks, constant memory)."""
    sha = hashlib.sha256()
    md5s = []
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise NoInputError(f"cannot read {_shown(rel)}: {exc.strerror or exc}",
                           "It vanished or changed while planning: plan again.") from None
    with fh:
        for span in plan_parts(size, part_size):
            md5 = hashlib.md5(usedforsecurity=False)
            left = span.size
            while left > 0:
                chunk = fh.read(min(_CHUNK, left))
                if not chunk:
                    raise DataError(f"{_shown(rel)} shrank while it was being planned",
                                    "Plan a folder whose files are not being written to.")
                md5.update(chunk)
                sha.update(chunk)
                left -= len(chunk)
                if advance:
                    advance(len(chunk))
            md5s.append(md5.hexdigest())
        if fh.read(1):
            raise DataError(f"{_shown(rel)} grew while it was being planned",
                            "Plan a folder whose files are not being written to.")
    return tuple(md5s), sha.hexdigest()


class _Counter:
    """Thread-safe progress totals handed to the caller's callback."""

    def __init__(self, total_bytes: int, total_files: int, callback: DirProgress | None) -> None:
        self.total_bytes, self.total_files = total_bytes, total_files
        self.bytes = self.files = 0
        self.callback = callback
        self._lock = threading.Lock()

    def add(self, n: int = 0, files: int = 0) -> None:
        if self.callback is None:
            return
        with self._lock:
            self.bytes += n
            self.files += files
            b, f = self.bytes, self.files
        self.callback(b, self.total_bytes, f, self.total_files)


def plan_dir(root: str | os.PathLike[str], *, part_size: int | None = None, sizes_only: bool = False,
             filters: Sequence[Filter] = (), follow_symlinks: bool = False, jobs: int | None = None,
             progress: DirProgress | None = None, notice: Callable[[str], None] | None = None,
             now: datetime | None = None) -> DirPlan:
    """Walk ``root`` and plan every regular file (see the module doc); 66 when nothing is left to plan.

    ``part_size`` fixes every file's part size (default: :func:`auto_part_size` of each file);
    ``filters`` are ``("exclude"|"include", glob)`` pairs matched against the ``/``-relative
    path, the last match winning; ``jobs`` files are hashed at once (default: 2 per CPU, at
    most 16); ``progress(done_bytes, total_bytes, done_files, total_files)`` is called as
    bytes are hashed.
    """
    found = list(walk(root, filters=filters, follow_symlinks=follow_symlinks, notice=notice))
    if not found:
        raise NoInputError(f"no files to plan in {root}",
                           "Check the folder and the --exclude/--include filters.")
    if len(found) > MAX_OBJECTS:
        raise DataError(f"{root} holds {len(found)} files; a bundle holds at most {MAX_OBJECTS}",
                        "Plan sub-folders separately.")
    layouts = []
    for rel, _path, size in found:
        ps = part_size or auto_part_size(size)
        try:
            check_part_size(size, ps)
        except Exception as exc:  # a layout S3 would refuse: name the file
            raise DataError(f"cannot plan {_shown(rel)}: {getattr(exc, 'message', exc)}",
                            getattr(exc, "hint", "") or "Leave --part-size out.") from None
        layouts.append(ps)
    created = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if sizes_only:
        files = tuple(DirPlanFile(rel, size, ps) for (rel, _p, size), ps in zip(found, layouts, strict=True))
        return DirPlan(files=files, sizes_only=True, created_at=created)
    counter = _Counter(sum(s for _r, _p, s in found), len(found), progress)
    counter.add()
    workers = jobs or min(16, 2 * (os.cpu_count() or 1))
    results: list[DirPlanFile] = []
    window: deque[tuple[int, Future[tuple[tuple[str, ...], str]]]] = deque()

    def one(i: int) -> tuple[tuple[str, ...], str]:
        rel, path, size = found[i]
        out = hash_file(path, rel, size, layouts[i], counter.add)
        counter.add(files=1)
        return out

    with ThreadPoolExecutor(workers, thread_name_prefix="s3mpu-plan") as pool:
        try:
            for i in range(len(found)):
                window.append((i, pool.submit(one, i)))
                while len(window) >= workers * 4:  # bounded: results are collected in order as they come
                    results.append(_collect(found, layouts, *window.popleft()))
            while window:
                results.append(_collect(found, layouts, *window.popleft()))
        except BaseException:
            for _i, fut in window:
                fut.cancel()
            raise
    return DirPlan(files=tuple(results), sizes_only=False, created_at=created)


def _collect(found: list[tuple[str, str, int]], layouts: list[int], i: int,
             fut: Future[tuple[tuple[str, ...], str]]) -> DirPlanFile:
    md5s, sha = fut.result()
    rel, _path, size = found[i]
    return DirPlanFile(rel, size, layouts[i], md5s, sha)


# -- the file format --------------------------------------------------------------------
@cache
def schema() -> dict[str, Any]:
    """The directory plan's JSON Schema shipped in the package."""
    return json.loads(resources.files("s3mpu.schema").joinpath("dirplan-v1.json").read_text("utf-8"))


@cache
def _compiled() -> Callable[[Any], Any]:
    import fastjsonschema

    return fastjsonschema.compile(schema(), use_formats=False)


def is_dir_plan(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == FORMAT


def validate(data: Any) -> None:
    """Raise :class:`DirPlanError` naming the first bad field: schema, then paths, layouts and hashes."""
    if not isinstance(data, dict):
        raise DirPlanError("directory plan is not a JSON object")
    if data.get("format") != FORMAT:
        raise DirPlanError(f"not an s3mpu directory plan (format is {str(data.get('format'))[:40]!r}, "
                           f"expected {FORMAT!r})", "format")
    from fastjsonschema import JsonSchemaValueException

    from s3mpu.manifest import _field_name, _short

    try:
        _compiled()(data)
    except JsonSchemaValueException as error:
        where = _field_name(error.name or "data")
        raise DirPlanError(f"directory plan field {where}: {_short(error)}", where) from None
    seen: set[str] = set()
    sizes_only = data["sizes_only"]
    for i, f in enumerate(data["files"]):
        where = f"files[{i}]"
        path = f["path"]
        why = path_problem(path)
        if why is None and len(path.encode("utf-8")) > MAX_KEY_BYTES:
            why = f"is over S3's {MAX_KEY_BYTES}-byte key limit"
        if why:
            raise DirPlanError(f"directory plan field {where}.path: {_short_repr(path)} {why}", f"{where}.path")
        if path in seen:
            raise DirPlanError(f"directory plan field {where}.path: {_short_repr(path)} is listed twice",
                               f"{where}.path")
        seen.add(path)
        try:
            check_part_size(f["size"], f["part_size"])
        except Exception as exc:
            raise DirPlanError(f"directory plan field {where}.part_size: {getattr(exc, 'message', exc)}",
                               f"{where}.part_size") from None
        md5s, sha = f.get("md5s"), f.get("sha256")
        if sizes_only:
            if md5s is not None or sha is not None:
                raise DirPlanError(f"directory plan field {where}: a sizes-only plan holds no hashes", where)
            continue
        if md5s is None or sha is None:
            raise DirPlanError(f"directory plan field {where}: md5s and sha256 are missing (the plan is not "
                               "sizes_only)", f"{where}.md5s")
        n = part_count(f["size"], f["part_size"])
        if len(md5s) != n:
            raise DirPlanError(f"directory plan field {where}.md5s: {len(md5s)} MD5s, but {f['size']} bytes in parts "
                               f"of {f['part_size']} make {n} parts", f"{where}.md5s")


def _short_repr(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def loads(text: str | bytes, source: str = "directory plan") -> DirPlan:
    from s3mpu.manifest import parse_json

    return DirPlan.from_dict(parse_json(text, source, "directory plan", DirPlanError))


def load_dir_plan(path: str | os.PathLike[str]) -> DirPlan:
    """Read and validate a directory plan file (``-`` is stdin); missing 66, malformed 65."""
    from s3mpu.manifest import read_document

    return loads(*read_document(path, "plan", "Make one with: s3mpu plan DIR -o PLAN"))


def dump_dir_plan(plan: DirPlan, path: str | os.PathLike[str], stdout: Any = None) -> None:
    """Write atomically with mode 0600 (``-`` is stdout); the plan holds no secret but names private files."""
    from s3mpu.manifest import write_private

    write_private(path, plan.to_json(), stdout)


__all__ = ["FORMAT", "DirPlan", "DirPlanFile", "DirPlanError", "Filter", "DirProgress", "plan_dir", "walk",
           "included", "hash_file", "load_dir_plan", "dump_dir_plan", "loads", "is_dir_plan", "schema", "validate"]
