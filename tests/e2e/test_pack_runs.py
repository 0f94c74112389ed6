"""``s3mpu pack``: the recipient side as one file, run under the oldest Python >= 3.10 and the newest (issue 21).

The pack is built once per session from this install, then run as the recipient would:
``python -I FILE ...`` with an interpreter that has nothing installed (pyenv's), against rclone
with a relay. ``tests/pythons.py`` finds the interpreters and fails loudly when 3.10 is missing.
"""
from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

import s3mpu
from pythons import newest, oldest, pyenv_pythons, version_of
from s3mpu.pack import EXCLUDED, MAX_SIZE

MiB = 1024 * 1024
PART = 5 * MiB
PYTHONS = {"oldest": oldest(), "newest": newest()}


@pytest.fixture(scope="session")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``s3mpu pack -o`` once per session, as the admin runs it (a real process)."""
    import sys

    out = tmp_path_factory.mktemp("pack") / "s3mpu.pyz"
    p = subprocess.run([sys.executable, "-m", "s3mpu", "pack", "-o", str(out), "--json"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["path"] == str(out) and doc["size"] == out.stat().st_size and doc["version"] == s3mpu.__version__
    return out


@pytest.fixture
def s3(rclone_server: Any) -> Any:
    return rclone_server


@pytest.fixture(params=sorted(PYTHONS))
def python(request: pytest.FixtureRequest) -> str:
    return PYTHONS[request.param]


def run(python: str, pack: Path, e2e: Any, *args: Any, cwd: Path | None = None,
        **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-I", str(pack), *map(str, args)], env=e2e.user_env(), capture_output=True,
                          text=True, timeout=120, cwd=cwd, **kw)


def test_the_interpreters_are_the_oldest_supported_and_the_newest() -> None:
    assert version_of(PYTHONS["oldest"]) == (3, 10)
    assert version_of(PYTHONS["newest"]) >= max(v[:2] for v in pyenv_pythons())


def test_pack_is_small_holds_all_of_s3mpu_and_none_of_the_admin_side(packed: Path) -> None:
    assert packed.stat().st_size < MAX_SIZE
    with zipfile.ZipFile(packed) as z:
        names = set(z.namelist())
        info = json.loads(z.read("_pack.json"))
    tops = {re.sub(r"[-_.]+", "-", n.split("/")[0].lower()) for n in names}  # packages and their dist-info
    for dist in EXCLUDED | {"s3transfer", "jinja2", "markupsafe", "blinker", "prometheus-client"}:
        assert not any(t == dist or t.startswith(dist + "-") for t in tops), dist
    src = Path(s3mpu.__file__).parent
    every = {f"s3mpu/{p.relative_to(src).as_posix()}" for p in src.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert every <= names, sorted(every - names)[:5]  # every module (and the schemas), so later ones come along
    assert {"__main__.py", "_pack.sha256", "click/__init__.py", "urllib3/__init__.py"} <= names
    assert info["s3mpu"] == s3mpu.__version__ and "click" in info["distributions"]
    assert not any(n.endswith((".so", ".pyd", ".pyc")) for n in names)


def test_help_version_and_admin_commands(packed: Path, python: str, e2e: Any) -> None:
    h = run(python, packed, e2e, "--help")
    assert h.returncode == 0, h.stderr
    for cmd in ("put", "status", "info", "plan", "complete", "abort", "request"):
        assert f"\n  {cmd} " in h.stdout, cmd
    assert "\n  mint " not in h.stdout and "\n  relay " not in h.stdout
    v = run(python, packed, e2e, "--version")
    assert v.returncode == 0 and f"s3mpu, version {s3mpu.__version__} (recipient side, packed" in v.stdout, v.stderr
    i = run(python, packed, e2e, "info", packed, "--json")  # info of a pack: the version it carries
    assert i.returncode == 0 and json.loads(i.stdout)["s3mpu"] == s3mpu.__version__, i.stderr
    for admin in (["mint", "s3://b/k", "--size", "1"], ["relay"], ["pack", "-o", "x"]):
        r = run(python, packed, e2e, *admin)
        assert r.returncode == 64, r.stderr
        assert f"'{admin[0]}' belongs to the full install of s3mpu" in r.stderr
        assert "Traceback" not in r.stderr


def test_multipart_put_and_status(packed: Path, python: str, e2e: Any, relay: Any, make_data: Any) -> None:
    size = 3 * PART + 4321
    data = make_data(size, seed=2110)
    m = e2e.mint(size=size, relay=relay.url)
    r = run(python, packed, e2e, "put", m, data, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["completed"] is True and doc["parts_uploaded"] == 4
    assert e2e.get(m) == data.read_bytes()
    st = run(python, packed, e2e, "status", m, "--json")
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["state"] == "completed"


def test_bundle_put(packed: Path, python: str, e2e: Any, relay: Any, tmp_path: Path) -> None:
    """The folder upload came along with the whole package, and runs on 3.10 too."""
    from bundle_fixtures import get, make_bundle, write_tree

    sizes = {"a.txt": 10, "sub/b.bin": 70_000, "big.bin": PART + 5}
    tree = write_tree(tmp_path / "dir", sizes)
    out = tmp_path / "b.json"
    make_bundle(e2e.s3, e2e.bucket, tree, out, relay_url=relay.url, hashed=True)
    r = run(python, packed, e2e, "put", out, tree, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["done"] == len(sizes)
    for rel in sizes:
        assert get(e2e.s3, e2e.bucket, "in/" + rel) == (tree / rel).read_bytes(), rel


def test_credentials_in_the_environment_do_not_need_boto3(packed: Path, e2e: Any, relay: Any,
                                                          make_data: Any) -> None:
    """A recipient with AWS keys set: the pack has no boto3, so complete and status go through the relay."""
    size = PART + 1
    data = make_data(size, seed=2112)
    m = e2e.mint(size=size, relay=relay.url)
    env = {**e2e.user_env(), "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-a-real-secret"}
    py = PYTHONS["oldest"]
    r = subprocess.run([py, "-I", str(packed), "put", str(m), str(data), "--no-complete", "--json"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    c = subprocess.run([py, "-I", str(packed), "complete", str(m), "--json"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert c.returncode == 0, c.stderr
    assert e2e.get(m) == data.read_bytes()


def test_older_python_gets_one_line(packed: Path, e2e: Any) -> None:
    olds = [path for v, path in sorted(pyenv_pythons().items()) if v[:2] < (3, 10)]
    if not olds:
        pytest.skip("no Python older than 3.10 in pyenv to try")
    for old in olds:
        r = run(old, packed, e2e, "put", "m.json", "f")
        assert r.returncode == 78, r.stderr
        assert r.stderr.count("\n") == 1 and "needs Python 3.10 or newer" in r.stderr, r.stderr


def test_damaged_pack_sends_nothing(packed: Path, e2e: Any, relay: Any, make_data: Any, tmp_path: Path) -> None:
    size = 2 * PART
    data = make_data(size, seed=2111)
    m = e2e.mint(size=size, relay=relay.url)
    raw = bytearray(packed.read_bytes())
    with zipfile.ZipFile(packed) as z:  # an edit inside a module only imported mid-run
        i = z.getinfo("s3mpu/user/finish.py")
    at = i.header_offset + 30 + len(i.filename) + len(i.extra) + 100
    raw[at:at + 8] = bytes(b ^ 0x5A for b in raw[at:at + 8])
    edited = tmp_path / "edited.pyz"
    edited.write_bytes(raw)
    truncated = tmp_path / "truncated.pyz"
    truncated.write_bytes(packed.read_bytes()[: len(raw) // 2])
    r = run(PYTHONS["oldest"], edited, e2e, "put", m, data)
    assert r.returncode == 66, r.stderr
    assert "is damaged (truncated or modified since s3mpu pack wrote it); nothing was sent" in r.stderr
    t = run(PYTHONS["oldest"], truncated, e2e, "put", m, data)
    assert t.returncode != 0  # Python's own error: the archive cannot be opened at all
    assert e2e.server_parts(m) == []
