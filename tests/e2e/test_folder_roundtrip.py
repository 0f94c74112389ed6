"""The offline round trip as a user and an admin run it: ``plan DIR`` -> ``mint s3://B/PREFIX/ --plan`` ->
``put BUNDLE DIR``, on moto and rclone (issue 19's tree: unicode and spaces, an empty file, a 1-byte file, a
file of exactly one part, a multipart file with a short tail, a hidden file, nested folders, a symlink and an
excluded file)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def tree(root: Path) -> dict[str, bytes]:
    files = {"caf\u00e9 cr\u00e8me/menu du jour.txt": b"soupe\n", "empty": b"", "one": b"1",
             "exact.bin": os.urandom(5 * MiB), "a/b/c/big.bin": os.urandom(11 * MiB + 5), ".hidden": b"h"}
    for rel, data in {**files, "scratch.tmp": b"not this"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "link").symlink_to("one")
    return files


def test_plan_mint_put_byte_identical_and_nothing_else(e2e: Any, relay_for: Any, tmp_path: Path) -> None:
    relay = relay_for(e2e.s3)
    folder = tmp_path / "delivery"
    files = tree(folder)
    plan, bundle = tmp_path / "d.plan.json", tmp_path / "d.bundle.json"
    r = e2e.cli(["plan", folder, "--exclude", "*.tmp", "--part-size", "5M", "-o", plan])
    assert r.code == 0, r.stderr
    assert "skipped symlink link" in r.stderr
    r = e2e.cli(["mint", f"s3://{e2e.bucket}/drop/", "--plan", plan, "--relay", relay.url, "--expires", "1h",
                 "-o", bundle], env=e2e.admin_env())
    assert r.code == 0, r.stderr
    r = e2e.cli(["put", bundle, folder, "--json"])
    assert r.code == 0, r.stdout + r.stderr
    client = e2e.s3.client()
    listed = client.list_objects_v2(Bucket=e2e.bucket).get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(f"drop/{p}" for p in files)
    for rel, data in files.items():
        got = client.get_object(Bucket=e2e.bucket, Key=f"drop/{rel}")
        assert got["Body"].read() == data, rel
    assert client.list_multipart_uploads(Bucket=e2e.bucket).get("Uploads", []) == []
    again = e2e.cli(["put", bundle, folder, "--json"])  # a finished bundle sends nothing
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert again.code == 0 and summary["bytes_sent"] == 0 and summary["done"] == len(files), summary
