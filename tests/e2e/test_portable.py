"""The user side with every portable fallback forced, on rclone with a relay (issue 21).

Each run is a real ``s3mpu`` process whose ``-c`` prelude makes ``fcntl`` unimportable and
removes ``os.pread``, ``os.preadv``, ``os.sendfile`` and ``os.posix_fadvise`` *before* s3mpu is
imported: the process sees what Windows (or a macOS build without preadv) offers, so the lock
is the pid/host/start-time lock file, reads go through per-thread handles (seek + readinto) and
parts are sent from their buffer.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from s3mpu.user.journal import journal_path

MiB = 1024 * 1024
PART = 5 * MiB
PRELUDE = (
    "import os, sys\n"
    "sys.modules['fcntl'] = None\n"  # import fcntl -> ImportError, as on Windows
    "for _n in ('pread', 'preadv', 'sendfile', 'posix_fadvise'):\n"
    "    if hasattr(os, _n):\n"
    "        delattr(os, _n)\n"
)
FORCED = [sys.executable, "-c", PRELUDE + "from s3mpu.cli import main\nmain()"]


@pytest.fixture
def s3(rclone_server: Any) -> Any:
    """Only rclone: the strict server (signatures, signed lengths and Content-MD5 are checked)."""
    return rclone_server


def forced(e2e: Any, *args: Any, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(FORCED + [str(a) for a in args], env=e2e.user_env(), capture_output=True, text=True,
                          timeout=120, **kw)


def forced_bg(e2e: Any, *args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(FORCED + [str(a) for a in args], env=e2e.user_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def journal_of(manifest: Path) -> Path:
    uid = json.loads(manifest.read_text())["upload_id"]
    return journal_path(uid, Path(os.environ["XDG_STATE_HOME"]) / "s3mpu")


def parts_journalled(manifest: Path) -> int:
    try:
        lines = journal_of(manifest).read_text().splitlines()
    except FileNotFoundError:
        return 0
    return sum(1 for line in lines[1:] if line.strip().startswith("{"))


def wait_for(cond: Any, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_the_prelude_forces_every_fallback() -> None:
    code = PRELUDE + ("import json\nfrom s3mpu import compat\nfrom s3mpu.user import lock\n"
                      "print(json.dumps([compat.fast_calls(), compat.pread_into.__name__, lock.MECHANISM]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    calls, reader, mechanism = json.loads(p.stdout)
    assert calls == {"fcntl": False, "preadv": False, "pread": False, "sendfile": False, "posix_fadvise": False,
                     "fchmod": True}
    assert reader == "_pread_fallback" and mechanism == "lockfile"


@pytest.mark.parametrize("name", ["data.bin", r"C:\data\x.bin", r"\\server\share\x.bin"])
def test_multipart_put_is_byte_identical(e2e: Any, relay: Any, make_data: Any, tmp_path: Path, name: str) -> None:
    """Four workers reading one file through their own handles; a Windows-looking FILE is taken as given."""
    size = 3 * PART + 12345
    data = make_data(size, name=name, seed=2101)
    m = e2e.mint(size=size, relay=relay.url)
    p = forced(e2e, "put", m, name, "--json", "-j", "4", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["completed"] is True and doc["parts_uploaded"] == 4
    assert e2e.get(m) == data.read_bytes()
    assert not journal_of(m).with_suffix(".lock").exists()  # released: a finished run leaves no lock file


def test_kill_9_mid_upload_then_rerun_resumes(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 4 * PART
    data = make_data(size, seed=2102)
    m = e2e.mint(size=size, relay=relay.url)
    first = forced_bg(e2e, "put", m, data, "--json", "-j", "1", "--limit-rate", "4M")
    try:
        wait_for(lambda: parts_journalled(m) >= 1)
        lock = journal_of(m).with_suffix(".lock")
        holder = json.loads(lock.read_text())
        assert holder["pid"] == first.pid and holder["host"]  # the lock file names its holder
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert lock.exists()  # kill -9 left the lock file behind: the re-run must judge it stale
    done_before = parts_journalled(m)
    assert 1 <= done_before < 4
    r = forced(e2e, "put", m, data, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["completed"] is True and doc["parts_uploaded"] == 4 - done_before  # resumed, not restarted
    assert e2e.get(m) == data.read_bytes()


def test_second_run_is_refused_with_75_and_the_first_completes(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 3 * PART
    data = make_data(size, seed=2103)
    m = e2e.mint(size=size, relay=relay.url)
    first = forced_bg(e2e, "put", m, data, "--json", "-j", "1", "--limit-rate", "4M")
    try:
        wait_for(lambda: parts_journalled(m) >= 1)
        second = forced(e2e, "put", m, data, "--json")
    finally:
        out, err = first.communicate(timeout=120)
    assert second.returncode == 75, second.stderr
    assert f"another s3mpu put (pid {first.pid}) is uploading this manifest; nothing was sent" in second.stderr
    assert first.returncode == 0, err
    assert json.loads(out)["completed"] is True
    assert e2e.get(m) == data.read_bytes()


def test_put_from_a_pipe(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 2 * PART + 777
    data = make_data(size, seed=2104).read_bytes()
    m = e2e.mint(max_size=4 * PART, relay=relay.url)
    p = subprocess.run(FORCED + ["put", str(m), "-", "--json"], input=data, env=e2e.user_env(),
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    doc = json.loads(p.stdout)
    assert doc["completed"] is True and doc["size"] == size
    assert e2e.get(m) == data


def test_bundle_put_with_every_fallback(e2e: Any, relay: Any, tmp_path: Path) -> None:
    """Folder uploads too: small files and the parts of a large one, read without pread, sent without sendfile."""
    from bundle_fixtures import get, make_bundle, write_tree

    sizes = {"a.txt": 10, "sub/b.bin": 200_000, "sub/deep/c.bin": 3 * 1024, "big.bin": 2 * PART + 99}
    tree = write_tree(tmp_path / "dir", sizes)
    out = tmp_path / "b.json"
    make_bundle(e2e.s3, e2e.bucket, tree, out, relay_url=relay.url, hashed=True)
    p = forced(e2e, "put", out, tree, "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.splitlines()[-1])["done"] == len(sizes)
    for rel in sizes:
        assert get(e2e.s3, e2e.bucket, "in/" + rel) == (tree / rel).read_bytes(), rel
