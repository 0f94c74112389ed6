"""``s3mpu request s3://B/PREFIX/ DIR`` as a user runs it: plan, mint through the relay, put, on moto and rclone.

The whole flow needs ``put BUNDLE DIR`` (the lead's side of issue 19); the refusal outside the
token's prefix does not.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from relay_fixtures import API_TOKENS
from s3mpu.relay.config import ApiToken, token_sha256

MiB = 1024 * 1024


def make_tree(root: Path) -> dict[str, bytes]:
    files = {"caf\u00e9 menu/l\u00e9gumes et fruits.txt": b"pommes\n", "empty": b"", "one": b"1",
             "exact.bin": os.urandom(5 * MiB), "nested/deeper/big.bin": os.urandom(11 * MiB + 3),
             ".hidden": b"h", "nested/spaces in name.csv": b"a,b\n"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "link").symlink_to("one")  # skipped with a notice: not uploaded
    return files


def test_request_a_folder_then_put(e2e: Any, relay_for: Any, tmp_path: Path) -> None:
    api = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), e2e.bucket, "in/", 64 * MiB, 86400,
                    max_files=20, max_total_size=64 * MiB),)
    relay = relay_for(e2e.s3, api_tokens=api)
    folder = tmp_path / "delivery"
    files = make_tree(folder)
    env = {"S3MPU_API_TOKEN": API_TOKENS[0]}
    r = e2e.cli(["request", f"s3://{e2e.bucket}/in/2026/", folder, "--relay", relay.url, "--part-size", "5M",
                 "--save-manifest", tmp_path / "delivery.bundle.json"], env=env)
    assert r.code == 0, r.stderr
    assert "skipped symlink link" in r.stderr
    client = e2e.s3.client()
    listed = client.list_objects_v2(Bucket=e2e.bucket).get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(f"in/2026/{p}" for p in files)  # nothing else written
    for rel, data in files.items():
        assert client.get_object(Bucket=e2e.bucket, Key=f"in/2026/{rel}")["Body"].read() == data, rel
    assert client.list_multipart_uploads(Bucket=e2e.bucket).get("Uploads", []) == []


def test_request_outside_the_token_prefix_is_77(e2e: Any, relay_for: Any, tmp_path: Path) -> None:
    api = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), e2e.bucket, "in/", 64 * MiB, 86400),)
    relay = relay_for(e2e.s3, api_tokens=api)
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a").write_bytes(b"a")
    r = e2e.cli(["request", f"s3://{e2e.bucket}/elsewhere/", folder, "--relay", relay.url],
                env={"S3MPU_API_TOKEN": API_TOKENS[0]})
    assert r.code == 77 and "'a'" in r.stderr and "in/*" in r.stderr
    assert e2e.s3.client().list_objects_v2(Bucket=e2e.bucket).get("KeyCount", 0) == 0


def test_request_a_folder_with_filters_uploads_only_what_they_keep_and_reruns_resume(e2e: Any, relay_for: Any,
                                                                                      tmp_path: Path) -> None:
    api = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), e2e.bucket, "in/", 64 * MiB, 86400),)
    relay = relay_for(e2e.s3, api_tokens=api)
    folder = tmp_path / "d"
    for rel in ("a.jpg", "b.txt", "sub/c.jpg", "sub/d.tmp"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(rel.encode())
    args = ["request", f"s3://{e2e.bucket}/in/", folder, "--relay", relay.url, "--exclude", "*",
            "--include", "*.jpg", "--sizes-only", "--save-manifest", tmp_path / "k.json"]
    env = {"S3MPU_API_TOKEN": API_TOKENS[0]}
    r = e2e.cli(args, env=env)
    assert r.code == 0, r.stderr
    keys = sorted(o["Key"] for o in e2e.s3.client().list_objects_v2(Bucket=e2e.bucket).get("Contents", []))
    assert keys == ["in/a.jpg", "in/sub/c.jpg"]
    again = e2e.cli(args, env=env)  # the kept bundle still matches the filtered folder: resumed, not re-minted
    assert again.code == 0 and "resuming the bundle" in again.stderr, again.stderr
    bad = e2e.cli(["request", f"s3://{e2e.bucket}/in/x.jpg", folder / "a.jpg", "--relay", relay.url, "--exclude", "*"],
                  env=env)
    assert bad.code == 64 and "for a folder" in bad.stderr
