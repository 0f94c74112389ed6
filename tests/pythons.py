"""Which CPython interpreters the packed uploader is tested under (issue 21).

The pack must run on the oldest Python >= 3.10 and on the newest one: this finds them among
pyenv's versions (``$PYENV_ROOT`` or ``~/.pyenv``, then ``/root/.pyenv``). ``S3MPU_OLDEST_PYTHON``
overrides the oldest. A machine without a 3.10 cannot prove the claim, so :func:`oldest` fails
loudly there instead of skipping (``.ci/run`` calls it first and says how to install one).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

OLDEST_SUPPORTED = (3, 10)


def _roots() -> list[Path]:
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv"), "/root/.pyenv"]
    return [Path(r) for r in dict.fromkeys(r for r in roots if r)]


def pyenv_pythons() -> dict[tuple[int, int, int], str]:
    """``{(major, minor, micro): path}`` of every CPython 3 pyenv holds."""
    found: dict[tuple[int, int, int], str] = {}
    for root in _roots():
        for d in sorted((root / "versions").glob("3.*")):
            m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", d.name)
            exe = d / "bin" / "python3"
            if m and exe.is_file():
                found.setdefault((int(m[1]), int(m[2]), int(m[3])), str(exe))
    return found


def version_of(exe: str) -> tuple[int, int]:
    out = subprocess.run([exe, "-I", "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                         text=True, timeout=30, check=True).stdout.split()
    return int(out[0]), int(out[1])


def oldest() -> str:
    """The oldest CPython >= 3.10 available; raises (never skips) when there is none."""
    forced = os.environ.get("S3MPU_OLDEST_PYTHON")
    if forced:
        return forced
    ok = sorted(v for v in pyenv_pythons() if v[:2] >= OLDEST_SUPPORTED)
    if not ok or ok[0][:2] != OLDEST_SUPPORTED:
        raise RuntimeError("no CPython 3.10 found (pyenv versions under " + ", ".join(map(str, _roots())) + "): the "
                           "packed uploader must be tested on it. Install one (pyenv install 3.10) or set "
                           "S3MPU_OLDEST_PYTHON=/path/to/python3.10.")
    return pyenv_pythons()[ok[0]]


def newest() -> str:
    """The newest CPython available (pyenv's, or the one running the tests if newer)."""
    versions = pyenv_pythons()
    best = max(versions) if versions else None
    if best is None or best[:2] <= tuple(sys.version_info[:2]):
        return sys.executable
    return versions[best]


if __name__ == "__main__":  # .ci/run: print them, or fail loudly
    print(oldest())
    print(newest())
