"""``s3mpu put BUNDLE DIR`` against real servers (moto and rclone) with a real relay (SPEC §8)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bundle_fixtures import MiB, get, make_bundle, write_tree
from e2e.conftest import E2E

TREE = {"a.txt": 10, "empty": 0, "sub/b.bin": 200_000, "sub/deep/c.bin": 3 * 1024, "big.bin": 12 * MiB}


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in stdout.splitlines() if x.strip()]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "dir", TREE)


def test_a_bundle_lands_every_file_byte_identical_and_a_rerun_sends_nothing(e2e: E2E, tree: Path, relay: Any) -> None:
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, tree, out, relay_url=relay.url, hashed=e2e.s3.strict)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    r = e2e.cli(["put", out, tree, "--json"])
    assert r.code == 0, r.stderr
    events = lines(r.stdout)
    summary = events[-1]
    assert summary["summary"] and summary["objects"] == 5 and summary["done"] == 5 and summary["failed"] == 0
    assert sorted(e["path"] for e in events[:-1]) == sorted(TREE)
    assert all(e["state"] == "done" and e["etag"] for e in events[:-1])
    for rel in TREE:
        assert get(e2e.s3, e2e.bucket, "in/" + rel) == (tree / rel).read_bytes(), rel
    again = e2e.cli(["put", out, tree, "--json"])
    assert again.code == 0, again.stderr
    s = lines(again.stdout)[-1]
    assert (s["skipped"], s["bytes_sent"], s["done"], s["finished_before"]) == (5, 0, 5, True)
    import shutil

    shutil.rmtree(Path(os.environ["XDG_STATE_HOME"]) / "s3mpu" / "bundles")  # journal and note gone
    third = e2e.cli(["put", out, tree, "--json"])
    assert third.code == 0, third.stderr
    assert lines(third.stdout)[-1]["done"] == 5
    for rel in TREE:
        assert get(e2e.s3, e2e.bucket, "in/" + rel) == (tree / rel).read_bytes(), rel


def test_a_missing_file_and_a_changed_file_fail_their_own_objects_only(e2e: E2E, tree: Path, relay: Any) -> None:
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, tree, out, relay_url=relay.url, hashed=True)
    saved = {rel: (tree / rel).read_bytes() for rel in ("a.txt", "sub/deep/c.bin")}
    (tree / "a.txt").unlink()
    (tree / "sub/deep/c.bin").write_bytes(b"x" * 3 * 1024)  # same size, other bytes: the plan's MD5 tells
    (tree / "extra.txt").write_text("not in the bundle")
    r = e2e.cli(["put", out, tree, "--json"])
    assert r.code == 2, r.stderr
    events = {e.get("path"): e for e in lines(r.stdout) if not e.get("summary")}
    assert events["a.txt"]["state"] == "failed" and events["a.txt"]["exit_code"] == 66
    assert events["sub/deep/c.bin"]["state"] == "failed" and events["sub/deep/c.bin"]["exit_code"] == 65
    assert get(e2e.s3, e2e.bucket, "in/a.txt") is None and get(e2e.s3, e2e.bucket, "in/sub/deep/c.bin") is None
    assert get(e2e.s3, e2e.bucket, "in/big.bin") == (tree / "big.bin").read_bytes()
    assert get(e2e.s3, e2e.bucket, "in/extra.txt") is None
    summary = lines(r.stdout)[-1]
    assert summary["failed"] == 2 and summary["done"] == 3 and summary["unnamed_files"] == 1
    assert "a.txt" in r.stderr and "c.bin" in r.stderr and "re-run" in r.stderr.lower()
    for rel, data in saved.items():  # both restored: the same command finishes, sending only those two
        (tree / rel).write_bytes(data)
    again = e2e.cli(["put", out, tree, "--json"])
    assert again.code == 0, again.stderr
    summary = lines(again.stdout)[-1]
    assert (summary["done"], summary["skipped"], summary["bytes_sent"]) == (5, 3, 10 + 3 * 1024)
    for rel in TREE:
        assert get(e2e.s3, e2e.bucket, "in/" + rel) == (tree / rel).read_bytes(), rel


def test_hostile_paths_are_refused_whole_before_anything_is_sent(e2e: E2E, tree: Path) -> None:
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, tree, out)
    doc = json.loads(out.read_text())
    doc["objects"][0]["path"] = "../../etc/passwd"
    doc["objects"][0]["key"] = "in/../../etc/passwd"
    out.write_text(json.dumps(doc))
    r = e2e.cli(["put", out, tree])
    assert r.code == 65 and "'..'" in r.stderr
    assert e2e.s3.client().list_objects_v2(Bucket=e2e.bucket).get("KeyCount", 0) == 0


def test_a_symlink_leaving_the_folder_and_a_fifo_fail_their_objects(e2e: E2E, tmp_path: Path) -> None:
    root = write_tree(tmp_path / "d", {"ok.txt": 5, "secret-link": 5, "pipe": 0})
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (root / "secret-link").unlink()
    (root / "secret-link").symlink_to(outside)
    (root / "pipe").unlink()
    os.mkfifo(root / "pipe")
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, root, out, paths=["ok.txt", "secret-link", "pipe"])
    r = e2e.cli(["put", out, root, "--json"])
    assert r.code == 2, r.stderr
    ev = {e["path"]: e for e in lines(r.stdout) if not e.get("summary")}
    assert ev["ok.txt"]["state"] == "done"
    assert ev["secret-link"]["exit_code"] == 65 and "leaves the folder" in ev["secret-link"]["error"]
    assert ev["pipe"]["exit_code"] == 65 and "FIFO" in ev["pipe"]["error"]
    assert get(e2e.s3, e2e.bucket, "in/secret-link") is None


def test_an_expired_bundle_sends_nothing_and_exits_77(rclone_server: Any, tmp_path: Path) -> None:
    e2e = E2E(rclone_server, tmp_path, rclone_server.bucket())  # moto checks no expiry (LAB.md)
    tree = write_tree(tmp_path / "dir", TREE)
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, tree, out, expires_in=3, paths=["a.txt", "sub/b.bin"])
    import time

    time.sleep(3.5)
    r = e2e.cli(["put", out, tree])
    assert r.code == 77, (r.code, r.stderr)
    assert get(e2e.s3, e2e.bucket, "in/a.txt") is None


def test_status_info_and_abort_of_a_bundle(e2e: E2E, tree: Path, relay: Any) -> None:
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, tree, out, relay_url=relay.url)
    (tree / "a.txt").unlink()
    r = e2e.cli(["status", out, tree, "--json"])
    assert r.code == 0, r.stderr
    assert r.json["totals"]["not_started"] == 5
    assert [o["detail"] for o in r.json["objects"] if o["path"] == "a.txt"] == [f"missing from {tree}"]
    (tree / "a.txt").write_bytes(b"x" * 10)
    info = e2e.cli(["info", out, "--json"])
    assert info.code == 0 and "REDACTED" in info.stdout and "X-Amz-Signature=" in info.stdout
    put = e2e.cli(["put", out, tree, "--no-complete", "--json"])
    assert put.code == 0, put.stderr
    st = e2e.cli(["status", out, "--json"]).json
    assert st["totals"]["done"] == 4 and st["totals"]["in_progress"] == 1
    ab = e2e.cli(["abort", out, "--json"])
    assert ab.code == 0 and ab.json["objects"][0]["state"] == "aborted"
    st = e2e.cli(["status", out, "--json"]).json
    assert st["totals"]["aborted"] == 1


def test_an_unreachable_server_is_75_when_nothing_could_be_sent(e2e: E2E, tree: Path) -> None:
    from servers import free_port

    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, tree, out, paths=["a.txt", "sub/b.bin", "empty"])
    dead = f"http://127.0.0.1:{free_port()}"
    out.write_text(out.read_text().replace(e2e.s3.endpoint, dead))
    r = e2e.cli(["put", out, tree, "--retries", "0", "--json"])
    assert r.code == 75, (r.code, r.stderr)
    assert "none of the 3 objects could be uploaded" in r.stderr and "a.txt" in r.stderr
    assert lines(r.stdout)[-1]["failed"] == 3
