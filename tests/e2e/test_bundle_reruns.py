"""A bundle's re-runs converge: kill -9 mid-run, a second run at the same time, many small files with a large one."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bundle_fixtures import MiB, get, make_bundle, write_tree
from e2e.conftest import S3MPU, E2E

import s3mpu


def journal_lines(state: Path) -> int:
    files = list((state / "s3mpu" / "bundles").glob("*.jsonl")) if (state / "s3mpu" / "bundles").exists() else []
    return sum(len(f.read_text().splitlines()) - 1 for f in files)


@pytest.mark.soak
def test_kill_9_mid_bundle_then_a_rerun_lands_every_object_right(e2e: E2E, tmp_path: Path, relay: Any,
                                                                clean_env: Path) -> None:
    sizes = {f"small/{i:03d}.dat": 40_000 + i for i in range(60)}
    sizes["large.bin"] = 11 * MiB
    root = write_tree(tmp_path / "d", sizes)
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, root, out, relay_url=relay.url, hashed=e2e.s3.strict)
    env = e2e.user_env()
    proc = subprocess.Popen(S3MPU + ["put", str(out), str(root), "--limit-rate", "1M", "-j", "4", "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while journal_lines(Path(env["XDG_STATE_HOME"])) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -9
    first = journal_lines(Path(env["XDG_STATE_HOME"]))
    assert 5 <= first < len(sizes)
    r = e2e.run(["put", str(out), str(root), "--json"])
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])
    assert summary["done"] == len(sizes) and summary["skipped"] >= 5
    for rel in sizes:
        assert get(e2e.s3, e2e.bucket, "in/" + rel) == (root / rel).read_bytes(), rel


def test_a_second_run_of_the_same_bundle_is_refused_75_and_the_first_completes(e2e: E2E, tmp_path: Path,
                                                                               relay: Any) -> None:
    root = write_tree(tmp_path / "d", {f"f{i}": 100_000 for i in range(20)})
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, root, out, relay_url=relay.url)
    env = e2e.user_env()
    first = subprocess.Popen(S3MPU + ["put", str(out), str(root), "--limit-rate", "800K", "-j", "2", "-q"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while journal_lines(Path(env["XDG_STATE_HOME"])) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    second = e2e.run(["put", str(out), str(root)])
    assert second.code == 75 and "another s3mpu put" in second.stderr
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    for i in range(20):
        assert get(e2e.s3, e2e.bucket, f"in/f{i}") == (root / f"f{i}").read_bytes()


def test_hundreds_of_small_files_and_a_large_one_through_the_python_api(e2e: E2E, tmp_path: Path,
                                                                         relay: Any) -> None:
    sizes = {f"d{i % 7}/n{i:04d}.txt": (i * 37) % 5000 for i in range(400)}
    sizes["video.mov"] = 16 * MiB
    root = write_tree(tmp_path / "d", sizes)
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, root, out, relay_url=relay.url)
    seen: list[str] = []
    result = s3mpu.put_bundle(str(out), root, jobs=64, memory="1M", on_object=lambda r: seen.append(r.path))
    assert result.error() is None and result.done == len(sizes) == len(seen)
    assert result.bytes_sent == sum(sizes.values())
    listed = e2e.s3.client().list_objects_v2(Bucket=e2e.bucket, MaxKeys=1000)
    assert listed["KeyCount"] == len(sizes)
    assert get(e2e.s3, e2e.bucket, "in/video.mov") == (root / "video.mov").read_bytes()
    assert get(e2e.s3, e2e.bucket, "in/d3/n0003.txt") == (root / "d3/n0003.txt").read_bytes()
