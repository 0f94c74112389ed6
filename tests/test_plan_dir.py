"""Directory plans: the walk (names, filters, symlinks, special files), hashing, the format and hostile plans."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from s3mpu.cli import cli
from s3mpu.errors import DataError, ManifestError, NoInputError
from s3mpu.plan_dir import (FORMAT, DirPlan, DirPlanError, included, load_dir_plan, loads, plan_dir, walk)

MiB = 1024 * 1024


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tree(tmp_path / "d", {"a.txt": b"a", "empty": b"", "sub/deep/x.bin": os.urandom(11 * MiB + 3),
                                 "sub/sp ace \u00e9.txt": b"hello", ".hidden": b"h"})


def paths(p: DirPlan) -> list[str]:
    return [f.path for f in p.files]


def test_plans_every_regular_file_with_part_md5s_and_sha256(folder: Path) -> None:
    seen: list[tuple[int, int, int, int]] = []
    p = plan_dir(folder, part_size=5 * MiB, progress=lambda *a: seen.append(a))
    assert sorted(paths(p)) == sorted([".hidden", "a.txt", "empty", "sub/deep/x.bin", "sub/sp ace \u00e9.txt"])
    big = next(f for f in p.files if f.path == "sub/deep/x.bin")
    data = (folder / "sub/deep/x.bin").read_bytes()
    assert big.md5s == tuple(hashlib.md5(data[o:o + 5 * MiB]).hexdigest() for o in (0, 5 * MiB, 10 * MiB))
    assert big.sha256 == hashlib.sha256(data).hexdigest() and big.parts == 3
    empty = next(f for f in p.files if f.path == "empty")
    assert empty.md5s == (hashlib.md5(b"").hexdigest(),) and empty.size == 0
    assert seen[-1] == (p.total_size, p.total_size, 5, 5)  # the last report: every byte and file hashed


def test_auto_part_size_per_file_and_sizes_only(folder: Path) -> None:
    p = plan_dir(folder, sizes_only=True)
    assert p.sizes_only and all(f.md5s is None and f.sha256 is None for f in p.files)
    assert {f.part_size for f in p.files} == {8 * MiB}
    assert loads(p.to_json()) == p


def test_names_kept_as_stored_never_normalised(tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "caf\u00e9.txt")
    nfc = unicodedata.normalize("NFC", "caf\u00e9.txt")
    root = tree(tmp_path / "d", {nfd: b"1", nfc: b"2"})
    got = set(paths(plan_dir(root)))
    assert got == {nfd, nfc}  # two different files, two different keys


def test_invalid_utf8_name_is_refused_naming_the_file(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "ok").write_bytes(b"1")
    with open(os.path.join(os.fsencode(root), b"bad\xff.txt"), "wb") as fh:
        fh.write(b"x")
    with pytest.raises(DataError, match=r"bad\\xff\.txt.*not valid UTF-8") as err:
        plan_dir(root)
    assert err.value.exit_code == 65
    assert paths(plan_dir(root, filters=[("exclude", "bad*")])) == ["ok"]  # excluded: not judged


def test_path_longer_than_a_key_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "d"
    deep = root / "/".join(["x" * 200] * 5)
    deep.mkdir(parents=True)
    (deep / ("y" * 100)).write_bytes(b"1")
    with pytest.raises(DataError, match="1024-byte key limit"):
        plan_dir(root)


def test_backslash_name_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path / "d", {"a\\b": b"1"})
    with pytest.raises(DataError, match="backslash"):
        plan_dir(root)


@pytest.mark.parametrize("filters, expected", [
    ([], {"a.txt", "b.log", "sub/c.txt", "sub/d.log"}),
    ([("exclude", "*.log")], {"a.txt", "sub/c.txt"}),
    ([("exclude", "*"), ("include", "*.log")], {"b.log", "sub/d.log"}),
    ([("include", "*.log"), ("exclude", "*")], set()),  # the last match wins
    ([("exclude", "sub/*")], {"a.txt", "b.log"}),
    ([("exclude", "*"), ("include", "sub/*"), ("exclude", "*.txt")], {"sub/d.log"}),
])
def test_filters_follow_aws_cli(tmp_path: Path, filters: list[tuple[str, str]], expected: set[str]) -> None:
    root = tree(tmp_path / "d", {"a.txt": b"", "b.log": b"", "sub/c.txt": b"", "sub/d.log": b""})
    assert {rel for rel, _p, _s in walk(root, filters=filters)} == expected
    assert included("A.TXT", [("exclude", "*.txt")])  # case-sensitive on every platform


def test_symlinks_skipped_with_notice_or_followed_inside(folder: Path) -> None:
    (folder / "link").symlink_to("a.txt")
    (folder / "dirlink").symlink_to("sub")
    notes: list[str] = []
    assert "link" not in paths(plan_dir(folder, notice=notes.append))
    assert any("symlink link" in n for n in notes) and any("symlink dirlink" in n for n in notes)
    followed = paths(plan_dir(folder, follow_symlinks=True, sizes_only=True))
    assert "link" in followed and "dirlink/deep/x.bin" in followed


@pytest.mark.parametrize("target, message", [("/etc", "leads outside the folder"), ("../..", "outside"),
                                             ("..", "symlink loop"), ("nowhere", "leads nowhere")])
def test_follow_symlinks_refuses_escapes_loops_and_dangling(folder: Path, target: str, message: str) -> None:
    (folder / "sub" / "l").symlink_to(target)
    with pytest.raises((DataError, NoInputError), match=message):
        plan_dir(folder, follow_symlinks=True, sizes_only=True)


def test_special_files_skipped_with_notice(folder: Path) -> None:
    os.mkfifo(folder / "fifo")
    notes: list[str] = []
    assert "fifo" not in paths(plan_dir(folder, notice=notes.append, sizes_only=True))
    assert notes == ["skipped FIFO fifo (only regular files are uploaded)"]


def test_nothing_to_plan_and_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    with pytest.raises(NoInputError, match="no files to plan"):
        plan_dir(tmp_path / "e")
    with pytest.raises(NoInputError):
        plan_dir(tmp_path / "missing")


def test_json_one_file_a_line_and_roundtrip(folder: Path, tmp_path: Path) -> None:
    p = plan_dir(folder)
    text = p.to_json()
    assert len(text.splitlines()) == len(p.files) + 7
    assert json.loads(text)["format"] == FORMAT
    (tmp_path / "p.json").write_text(text)
    assert load_dir_plan(tmp_path / "p.json") == p


def _good() -> dict[str, Any]:
    return {"format": FORMAT, "created_at": None, "sizes_only": False,
            "files": [{"path": "a/b", "size": 6 * MiB, "part_size": 5 * MiB, "md5s": ["0" * 32, "1" * 32],
                       "sha256": "f" * 64}]}


@pytest.mark.parametrize("change, field", [
    (lambda d: d.update(format="s3mpu.plan/1"), "format"),
    (lambda d: d.update(files=[]), "files"),
    (lambda d: d.update(extra=1), "(top level)"),
    (lambda d: d["files"][0].update(path="../etc/passwd"), "files[0].path"),
    (lambda d: d["files"][0].update(path="/abs"), "files[0].path"),
    (lambda d: d["files"][0].update(path="a\\b"), "files[0].path"),
    (lambda d: d["files"][0].update(path="a\ud800"), "files[0].path"),
    (lambda d: d["files"][0].update(path="x" * 1025), "files[0].path"),
    (lambda d: d["files"].append(dict(d["files"][0])), "files[1].path"),
    (lambda d: d["files"][0].update(size=-1), "files[0].size"),
    (lambda d: d["files"][0].update(md5s=["0" * 32]), "files[0].md5s"),
    (lambda d: d["files"][0].update(md5s=["Z" * 32, "1" * 32]), "files[0].md5s[0]"),
    (lambda d: d["files"][0].update(sha256=None), "files[0].md5s"),
    (lambda d: d["files"][0].update(part_size=1), "files[0].part_size"),
    (lambda d: d.update(sizes_only=True), "files[0]"),
])
def test_hostile_plans_name_the_field(change: Any, field: str) -> None:
    d = _good()
    loads(json.dumps(d))
    change(d)
    with pytest.raises(DirPlanError) as err:
        loads(json.dumps(d))
    assert err.value.field == field and err.value.exit_code == 65


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                    max_leaves=20))
def test_any_json_is_a_plan_or_a_65(data: Any) -> None:
    for doc in (data, {**_good(), "files": data}, {**_good(), "files": [data]}):
        try:
            loads(json.dumps(doc))
        except ManifestError as exc:
            assert exc.exit_code == 65


def test_truncated_plan_is_65(tmp_path: Path, folder: Path) -> None:
    text = plan_dir(folder).to_json()
    (tmp_path / "p.json").write_text(text[: len(text) // 2])
    with pytest.raises(DirPlanError, match="not valid JSON"):
        load_dir_plan(tmp_path / "p.json")


def test_cli_plan_dir_interleaved_filters_and_json(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    r = CliRunner().invoke(cli, ["plan", str(folder), "--exclude", "*", "--include", "*.txt", "--exclude", "a*",
                                 "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["files"] == 1
    assert paths(load_dir_plan(out)) == ["sub/sp ace \u00e9.txt"]
    assert out.stat().st_mode & 0o777 == 0o600


def test_cli_plain_progress_and_notices_without_tty(folder: Path, tmp_path: Path) -> None:
    (folder / "link").symlink_to("a.txt")
    r = CliRunner().invoke(cli, ["plan", str(folder), "-o", str(tmp_path / "p.json")])
    assert r.exit_code == 0, r.output
    assert "skipped symlink link" in r.stderr and "planned 5 files" in r.output
    assert "hashing" in r.stderr and "5/5 files" in r.stderr


def test_cli_refusals(folder: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["plan", str(folder / "a.txt"), "--sizes-only"])
    assert r.exit_code == 64 and "for a folder" in r.output
    (folder / "x\\y").write_bytes(b"")
    r = CliRunner().invoke(cli, ["plan", str(folder), "-o", str(tmp_path / "p.json")])
    assert r.exit_code == 65 and "x\\y" in r.output and not (tmp_path / "p.json").exists()


def test_imports_without_click_rich_or_boto3() -> None:
    code = ("import sys, s3mpu.plan_dir; bad = {'click', 'rich', 'boto3', 'flask'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
