"""``s3mpu pack``: the recipient side as one zipapp an admin sends along with the manifest.

Why: the person who receives a manifest is not the admin. They should not need ``pip``, a
Python >= 3.11, boto3 or Flask to upload: one file that ``python3 FILE put m.json bigfile``
runs, on any CPython >= 3.10, Windows included, with nothing installed (``python -I`` too).

How: offline, from what is installed here. The whole ``s3mpu`` package is copied (every module
under it, so commands added later come along without touching this file), plus every pure-Python
distribution it requires, transitively, except the admin side's (:data:`EXCLUDED`: boto3 and
friends for credentials, Flask and waitress for the relay, moto for the demo). The stdlib
``zipapp`` writes the archive with a ``__main__`` that first checks the Python version (one line
on an older one), and ``_pack.json`` records what was packed, shown by ``--version``.
Distributions are found with :mod:`importlib.metadata`; their files come from each one's
``RECORD``. A distribution with compiled code is refused: the pack must run on any platform.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import zipapp
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from s3mpu import __version__
from s3mpu.errors import ConfigError, NoInputError

#: the admin side's distributions, never packed (and nothing only they require): credentials (boto3),
#: the relay (Flask, waitress, and prometheus_client for its /metrics), the demo (moto)
EXCLUDED = frozenset({"boto3", "botocore", "s3transfer", "flask", "werkzeug", "waitress", "moto", "prometheus-client"})
#: the oldest Python the pack runs on (its ``__main__`` says so on anything older)
MIN_PYTHON = (3, 10)
#: the pack must stay small enough to attach to an e-mail or a ticket
MAX_SIZE = 8 * 1024 * 1024
_COMPILED = (".so", ".pyd", ".dll", ".dylib")

MAIN = '''# -*- coding: utf-8 -*-
# s3mpu recipient side (packed by `s3mpu pack`). Kept valid for old Pythons: it must be able to say
# which Python it needs before importing anything that only parses on 3.10+.
import sys
if sys.version_info < {min_python!r}:
    sys.stderr.write("error: this s3mpu uploader needs Python {min_text} or newer; this is Python %d.%d "
                     "(%s): run it with python3.10 or later\\n" % (sys.version_info[0], sys.version_info[1],
                                                                 sys.executable))
    sys.exit(78)


def _intact(path):
    # the last member holds the SHA-256 of every byte before it: a truncated or edited file stops
    # here, before anything is sent, instead of failing on a module imported mid-upload
    import hashlib
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            seal = z.getinfo("{seal}")
            digest = z.read(seal).decode("ascii", "replace").strip()
        with open(path, "rb") as fh:
            data = fh.read(seal.header_offset)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    return hashlib.sha256(data).hexdigest() == digest


ARCHIVE = getattr(globals().get("__loader__"), "archive", None) or sys.argv[0]
if not _intact(ARCHIVE):
    sys.stderr.write("error: %s is damaged (truncated or modified since s3mpu pack wrote it); nothing was sent: "
                     "ask the sender for a fresh copy\\n" % ARCHIVE)
    sys.exit(66)
from s3mpu.cli.packed import main
main()
'''
#: the archive's last member: the SHA-256 of every byte before it (see ``_intact`` in :data:`MAIN`)
SEAL = "_pack.sha256"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class PackResult:
    """What was written: the path, its size, and ``{distribution: version}`` packed beside s3mpu."""

    path: Path
    size: int
    version: str
    distributions: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # requirements for other platforms/Pythons not installed here


def _requirement(spec: str) -> tuple[str, str]:
    """``(normalised name, marker)`` of a requirement string (``"rich>=13; python_version < '3.11'"``)."""
    head, _, marker = spec.partition(";")
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", head)
    if not m:
        raise ConfigError(f"cannot read the requirement {spec!r} of an installed distribution")
    return _norm(m.group(1)), marker.strip()


def requirements(root: str = "s3mpu") -> tuple[list[metadata.Distribution], list[str]]:
    """Every installed distribution ``root`` needs at run time, minus :data:`EXCLUDED`, and the ones not here.

    A requirement gated by an extra is left out; one gated by a platform or Python version
    (``colorama; platform_system == "Windows"``, ``typing-extensions; python_version < "3.11"``)
    is packed when installed here, since the pack runs on other platforms and Pythons than this one.
    """
    found: dict[str, metadata.Distribution] = {}
    skipped: list[str] = []
    todo = [root]
    while todo:
        name = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ConfigError(f"{name} is not installed, so it cannot be packed",
                              "Install s3mpu with its dependencies (pip install s3mpu), then run s3mpu pack again.") from None
        for spec in dist.requires or []:
            dep, marker = _requirement(spec)
            if "extra" in marker or dep in EXCLUDED or dep in found or dep == _norm(root):
                continue
            try:
                found[dep] = metadata.distribution(dep)
            except metadata.PackageNotFoundError:
                if not marker:
                    raise ConfigError(f"{dep}, required by {name}, is not installed, so it cannot be packed",
                                      f"pip install {dep}, then run s3mpu pack again.") from None
                if spec not in skipped:
                    skipped.append(f"{spec.strip()} (not installed here)")
                continue
            todo.append(dep)
    return sorted(found.values(), key=lambda d: _norm(d.metadata["Name"])), skipped


def _copy_package(stage: Path) -> None:
    """Every file of the installed ``s3mpu`` package (an editable install too), without bytecode caches."""
    import s3mpu

    src = Path(s3mpu.__file__).parent
    shutil.copytree(src, stage / "s3mpu", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))


def _copy_distribution(dist: metadata.Distribution, stage: Path) -> None:
    name = dist.metadata["Name"]
    files = dist.files
    if not files:
        raise ConfigError(f"{name} was installed without a file list (RECORD), so it cannot be packed",
                          f"Reinstall it with pip (pip install --force-reinstall {name}), then run s3mpu pack again.")
    for rel in files:
        parts = rel.parts
        if not parts or parts[0] == ".." or "__pycache__" in parts or rel.suffix in (".pyc", ".pyo"):
            continue  # console scripts outside site-packages, bytecode caches
        if rel.name == "RECORD" or rel.name == "INSTALLER" or rel.name == "direct_url.json":
            continue
        if rel.suffix in _COMPILED or ".cpython-" in rel.name:
            raise ConfigError(f"{name} contains compiled code ({rel}): the pack carries pure Python only",
                              "Report this: the recipient side must not depend on it.")
        source = Path(str(dist.locate_file(rel)))
        if not source.is_file():
            continue
        target = stage.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def read_info(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What a pack records about itself (``_pack.json``: the s3mpu version, when, which libraries); None if not a pack."""
    try:
        if not os.path.isfile(path) or not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as z:
            info = json.loads(z.read("_pack.json").decode("utf-8"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return info if isinstance(info, dict) and "s3mpu" in info else None


def _seal(path: Path) -> None:
    """Append :data:`SEAL`: the SHA-256 of every byte before it (the shebang and every member).

    Not in the zip comment: the zipimport of Pythons before 3.8 cannot open an archive with a
    comment, and then could not even say that the pack needs 3.10.
    """
    with zipfile.ZipFile(path) as z:
        start = z.start_dir  # where 'a' mode writes the next member: every byte before it stays
    digest = hashlib.sha256(path.read_bytes()[:start]).hexdigest()
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(SEAL, digest + "\n")
    with zipfile.ZipFile(path) as z:
        if z.getinfo(SEAL).header_offset != start:
            raise ConfigError(f"sealing {path} moved its members; nothing was written")


def build(output: str | os.PathLike[str], *, interpreter: str = "/usr/bin/env python3") -> PackResult:
    """Write the zipapp to ``output`` (atomically) and say what is in it."""
    dists, skipped = requirements()
    out = Path(output)
    if not out.parent.is_dir():
        raise NoInputError(f"cannot write {out}: {out.parent} is not a directory")
    packed = {dist.metadata["Name"]: dist.version for dist in dists}
    with tempfile.TemporaryDirectory(prefix="s3mpu-pack-") as tmp:
        stage = Path(tmp) / "app"
        stage.mkdir()
        _copy_package(stage)
        for dist in dists:
            _copy_distribution(dist, stage)
        (stage / "__main__.py").write_text(
            MAIN.format(min_python=MIN_PYTHON, min_text=".".join(map(str, MIN_PYTHON)), seal=SEAL), "utf-8")
        info = {"s3mpu": __version__, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "python": f">={'.'.join(map(str, MIN_PYTHON))}", "distributions": packed}
        (stage / "_pack.json").write_text(json.dumps(info, indent=1) + "\n", "utf-8")
        tmp_out = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            zipapp.create_archive(stage, tmp_out, interpreter=interpreter, compressed=True)
            _seal(tmp_out)
            size = tmp_out.stat().st_size
            if size > MAX_SIZE:
                raise ConfigError(f"the pack would be {size} bytes, more than its limit of {MAX_SIZE}; nothing was written",
                                  "Report this: a dependency grew.")
            os.replace(tmp_out, out)
        finally:
            tmp_out.unlink(missing_ok=True)
    return PackResult(out, size, __version__, packed, skipped)


__all__ = ["EXCLUDED", "MIN_PYTHON", "MAX_SIZE", "PackResult", "requirements", "build", "read_info"]
