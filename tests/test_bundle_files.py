"""The folder side of a bundle: the files on disk the bundle does not name (reported, never sent)."""
from __future__ import annotations

import os
from pathlib import Path

from s3mpu.user.bundle_files import count_unnamed


def test_unnamed_files_are_counted_in_nested_folders_without_links_or_folders(tmp_path: Path) -> None:
    root = tmp_path / "d"
    for rel in ["a.txt", "sub/b.bin", "sub/deeper/c", "sub/deeper/named", "x/y/z/ü w"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"1")
    (root / "empty").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(5):
        (outside / f"o{i}").write_bytes(b"2")
    os.symlink(outside / "o0", root / "link-to-file")  # a link is not a regular file of the folder
    os.symlink(outside, root / "link-to-folder")  # never followed: its files are not the folder's
    n, first = count_unnamed(root, {"a.txt", "sub/deeper/named"})
    assert n == 3
    assert sorted(first) == ["sub/b.bin", "sub/deeper/c", "x/y/z/ü w"]


def test_only_the_first_few_unnamed_files_are_named(tmp_path: Path) -> None:
    for i in range(25):
        (tmp_path / f"f{i:02d}").write_bytes(b"")
    n, first = count_unnamed(tmp_path, set(), limit=10)
    assert n == 25 and len(first) == 10 and len(set(first)) == 10
    assert count_unnamed(tmp_path / "missing", set()) == (0, [])
