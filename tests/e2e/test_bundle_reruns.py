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
    return sum(len(f.read_bytes().rstrip(b"\0").splitlines()) - 1 for f in files)  # a mapped journal: zeros follow


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
    left = sum(sizes[json.loads(x)["path"]] for x in r.stdout.splitlines()[:-1])
    assert summary["bytes_sent"] <= left  # only what was not on the server before (a multipart file: its parts)
    for rel in sizes:
        assert get(e2e.s3, e2e.bucket, "in/" + rel) == (root / rel).read_bytes(), rel


def test_a_second_run_of_the_same_bundle_is_refused_75_and_the_first_completes(e2e: E2E, tmp_path: Path,
                                                                               relay: Any) -> None:
    root = write_tree(tmp_path / "d", {f"f{i}": 100_000 for i in range(20)})
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, root, out, relay_url=relay.url)
    env = e2e.user_env()
    first = subprocess.Popen(S3MPU + ["put", str(out), str(root), "--limit-rate", "400K", "-j", "2", "-q"], env=env,
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


def test_an_upload_aborted_elsewhere_fails_its_file_with_66_every_time_and_the_rest_land(e2e: E2E, tmp_path: Path,
                                                                                        relay: Any) -> None:
    root = write_tree(tmp_path / "d", {"a.txt": 100, "big.bin": 11 * MiB, "b.txt": 200})
    out = e2e.tmp / "b.json"
    b = make_bundle(e2e.s3, e2e.bucket, root, out, relay_url=relay.url)
    big = next(o.manifest for o in b.objects if o.manifest is not None)
    e2e.s3.client().abort_multipart_upload(Bucket=e2e.bucket, Key=big.key, UploadId=big.upload_id)
    for code in (2, 66):  # a re-run converges to the same refusal (now the only file left: its own code)
        r = e2e.cli(["put", out, root, "--json"])
        assert r.code == code, r.stderr
        events = {e["path"]: e for e in map(json.loads, r.stdout.splitlines()) if "path" in e}
        assert events["big.bin"]["state"] == "failed" and events["big.bin"]["exit_code"] == 66
        assert "big.bin" in r.stderr
    assert get(e2e.s3, e2e.bucket, "in/a.txt") == (root / "a.txt").read_bytes()
    assert get(e2e.s3, e2e.bucket, "in/big.bin") is None


def test_ctrl_c_stops_with_130_and_the_same_command_finishes(e2e: E2E, tmp_path: Path, relay: Any) -> None:
    sizes = {f"f{i:02d}": 300_000 for i in range(30)}
    root = write_tree(tmp_path / "d", sizes)
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, root, out, relay_url=relay.url)
    env = e2e.user_env()
    proc = subprocess.Popen(S3MPU + ["put", str(out), str(root), "--limit-rate", "1M", "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while journal_lines(Path(env["XDG_STATE_HOME"])) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "re-run the same command" in err.lower()
    r = e2e.run(["put", str(out), str(root), "--json"])
    assert r.code == 0, r.stderr
    for rel in sizes:
        assert get(e2e.s3, e2e.bucket, "in/" + rel) == (root / rel).read_bytes()


def test_no_complete_leaves_multipart_files_to_complete_bundle(e2e: E2E, tmp_path: Path, relay: Any) -> None:
    root = write_tree(tmp_path / "d", {"small": 10, "big.bin": 11 * MiB})
    out = e2e.tmp / "b.json"
    make_bundle(e2e.s3, e2e.bucket, root, out, relay_url=relay.url)
    r = e2e.cli(["put", out, root, "--no-complete", "--json"])
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])
    assert (summary["done"], summary["uploaded_not_completed"]) == (1, 1)
    assert get(e2e.s3, e2e.bucket, "in/big.bin") is None
    c = e2e.cli(["complete", out, "--json"])
    assert c.code == 0, c.stderr
    assert c.json["objects"][0]["state"] == "completed"
    assert get(e2e.s3, e2e.bucket, "in/big.bin") == (root / "big.bin").read_bytes()
    again = e2e.cli(["put", out, root, "--json"])  # completed elsewhere (by 'complete'): the re-run agrees
    assert again.code == 0, again.stderr
