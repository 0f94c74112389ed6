"""``s3mpu put`` end to end on moto and rclone (signatures checked): sizes, max-size, refusals, CLI."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

MiB = 1024 * 1024
E2E = Any  # the e2e fixture (tests/e2e/conftest.py)


@pytest.mark.parametrize("size", [1, 5 * MiB, 5 * MiB + 1, 3 * 5 * MiB + 7])
def test_put_completes_through_relay_byte_identical(e2e: E2E, relay: Any, make_data: Any, size: int) -> None:
    data = make_data(size, seed=size)
    m = e2e.mint(size=size, relay=relay.url)
    r = e2e.put(m, data)
    assert r.code == 0, r.stderr
    doc = r.json
    assert doc["completed"] is True and doc["size"] == size and doc["parts"] == max(1, -(-size // (5 * MiB)))
    assert set(doc) >= {"key", "size", "etag", "parts", "seconds", "mib_per_s"}
    assert e2e.get(m) == data.read_bytes()
    if doc["parts"] > 1 and doc["etag"] and "-" in doc["etag"]:
        md5s = [hashlib.md5(data.read_bytes()[i:i + 5 * MiB]).digest() for i in range(0, size, 5 * MiB)]
        assert doc["etag"] == hashlib.md5(b"".join(md5s)).hexdigest() + f"-{len(md5s)}"


def test_max_size_manifest_with_smaller_file(e2e: E2E, relay: Any, make_data: Any) -> None:
    data = make_data(2 * 5 * MiB + 3)
    m = e2e.mint(max_size=4 * 5 * MiB, relay=relay.url)
    r = e2e.put(m, data)
    assert r.code == 0, r.stderr
    assert r.json["parts"] == 3
    assert e2e.get(m) == data.read_bytes()


def test_empty_file(e2e: E2E, relay: Any, make_data: Any) -> None:
    data = make_data(0)
    m = e2e.mint(size=0, relay=relay.url)
    r = e2e.put(m, data)
    # S3 stores an empty object as one empty part; moto and rclone both accept it
    assert r.code == 0, r.stderr
    assert r.json["size"] == 0 and r.json["parts"] == 1
    assert e2e.get(m) == b""


def test_wrong_size_is_refused_before_any_byte(e2e: E2E, make_data: Any) -> None:
    data = make_data(5 * MiB + 10)
    m = e2e.mint(size=5 * MiB + 11)
    r = e2e.put(m, data)
    assert r.code == 65
    assert "5242890" in r.stderr and "5242891" in r.stderr and "nothing was sent" in r.stderr
    assert e2e.server_parts(m) == []
    big = make_data(3 * 5 * MiB, name="big.bin")
    m2 = e2e.mint(max_size=2 * 5 * MiB)
    r2 = e2e.put(m2, big)
    assert r2.code == 65 and str(3 * 5 * MiB) in r2.stderr and str(2 * 5 * MiB) in r2.stderr
    assert e2e.server_parts(m2) == []


def test_missing_file_and_manifest_are_66(e2e: E2E, tmp_path: Path, make_data: Any) -> None:
    m = e2e.mint(size=10)
    assert e2e.put(m, tmp_path / "nope.bin").code == 66
    assert e2e.put(tmp_path / "nope.json", make_data(10)).code == 66


def test_content_bound_plan_refuses_changed_file(e2e: E2E, relay: Any, make_data: Any, tmp_path: Path) -> None:
    data = make_data(2 * 5 * MiB + 5)
    plan = tmp_path / "plan.json"
    assert e2e.cli(["plan", data, "--part-size", "5M", "-o", plan]).code == 0
    m = e2e.mint(plan=plan, relay=relay.url)
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0xFF  # same size, other bytes in the last part
    changed = tmp_path / "changed.bin"
    changed.write_bytes(bytes(raw))
    r = e2e.put(m, changed, "-j", "1")
    assert r.code == 65 and "MD5" in r.stderr
    assert not e2e.exists(m)
    r = e2e.put(m, data)  # the planned file goes through, Content-MD5 signed
    assert r.code == 0, r.stderr
    assert e2e.get(m) == data.read_bytes()


def test_no_complete_then_complete_is_idempotent(e2e: E2E, relay: Any, make_data: Any) -> None:
    data = make_data(2 * 5 * MiB + 1)
    m = e2e.mint(size=2 * 5 * MiB + 1, relay=relay.url)
    r = e2e.put(m, data, "--no-complete")
    assert r.code == 0 and r.json["completed"] is False
    assert not e2e.exists(m) and e2e.server_parts(m) == [1, 2, 3]
    st = e2e.cli(["status", m, data, "--json"])
    assert st.code == 0 and st.json["parts_missing"] == [] and st.json["parts_server"] == [1, 2, 3]
    c = e2e.cli(["complete", m, "--json"])
    assert c.code == 0, c.stderr
    assert c.json["size"] == 2 * 5 * MiB + 1
    assert e2e.get(m) == data.read_bytes()
    again = e2e.cli(["complete", m, "--json"])
    assert again.code == 0 and again.json["size"] == 2 * 5 * MiB + 1


def test_parts_subset_shared_between_two_machines(e2e: E2E, relay: Any, make_data: Any, tmp_path: Path) -> None:
    size = 4 * 5 * MiB
    data = make_data(size)
    m = e2e.mint(size=size, relay=relay.url)
    a = e2e.put(m, data, "--parts", "1-2")
    assert a.code == 0 and a.json["completed"] is False and e2e.server_parts(m) == [1, 2]
    # machine B: its own state dir (no journal of A's parts)
    r = e2e.cli(["put", m, data, "--json", "--parts", "3-"],
                env={"XDG_STATE_HOME": str(tmp_path / "machine-b")})
    assert r.code == 0 and r.json["completed"] is False
    assert e2e.cli(["complete", m]).code == 0
    assert e2e.get(m) == data.read_bytes()


def test_abort_frees_the_upload(e2e: E2E, relay: Any, make_data: Any) -> None:
    data = make_data(5 * MiB + 1)
    m = e2e.mint(size=5 * MiB + 1, relay=relay.url)
    assert e2e.put(m, data, "--no-complete").code == 0
    r = e2e.cli(["abort", m, "--json"])
    assert r.code == 0 and r.json["aborted"] is True
    with pytest.raises(Exception, match="NoSuchUpload"):
        e2e.server_parts(m)
    again = e2e.put(m, data)
    assert again.code in (66, 77) and not e2e.exists(m)


def test_abort_through_presigned_url_without_relay(e2e: E2E, make_data: Any) -> None:
    data = make_data(100)
    m = e2e.mint(size=100)
    assert e2e.put(m, data, "--no-complete").code == 0
    r = e2e.cli(["abort", m])
    assert r.code == 0 and "abort URL" in r.stdout
    with pytest.raises(Exception, match="NoSuchUpload"):
        e2e.server_parts(m)


def test_real_subprocess_plain_progress_and_json(e2e: E2E, relay: Any, make_data: Any) -> None:
    size = 3 * 5 * MiB
    data = make_data(size)
    m = e2e.mint(size=size, relay=relay.url)
    r = e2e.run(["put", m, data, "--json", "--progress", "plain", "-j", "3"])
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["completed"] and doc["size"] == size
    assert "\r" not in r.stderr and "\x1b" not in r.stderr
    assert "uploading" in r.stderr and "sent " in r.stderr
    assert e2e.get(m) == data.read_bytes()


def test_quiet_prints_nothing_on_success(e2e: E2E, relay: Any, make_data: Any) -> None:
    data = make_data(1000)
    m = e2e.mint(size=1000, relay=relay.url)
    r = e2e.run(["-q", "put", m, data])
    assert r.code == 0 and r.stdout == "" and r.stderr == ""


def test_put_never_imports_boto3(e2e: E2E, relay: Any, make_data: Any) -> None:
    import subprocess
    import sys

    data = make_data(5 * MiB + 3)
    m = e2e.mint(size=5 * MiB + 3, relay=relay.url)
    code = ("import sys\nfrom s3mpu.cli import cli\ntry:\n    cli.main(['-q', 'put', sys.argv[1], sys.argv[2]])\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print(sorted({n.split('.')[0] for n in sys.modules} & {'boto3', 'botocore', 'flask', 'moto'}))")
    p = subprocess.run([sys.executable, "-c", code, str(m), str(data)], env=e2e.user_env(), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
    assert e2e.get(m) == data.read_bytes()


def test_rerun_after_completion_is_ok_and_sends_nothing(e2e: E2E, relay: Any, make_data: Any) -> None:
    data = make_data(5 * MiB + 77)
    m = e2e.mint(size=5 * MiB + 77, relay=relay.url)
    assert e2e.put(m, data).code == 0
    r = e2e.put(m, data)
    assert r.code == 0, r.stderr
    assert r.json["completed"] is True and r.json["bytes_sent"] == 0
    other = make_data(5 * MiB + 77, name="other.bin", seed=99)
    r = e2e.put(m, other)  # same size, other bytes: the object is not this file's
    assert r.code in (65, 66), r.stderr


def test_status_without_relay_uses_presigned_listing(e2e: E2E, make_data: Any) -> None:
    size = 3 * 5 * MiB
    data = make_data(size)
    m = e2e.mint(size=size)
    assert e2e.put(m, data, "--parts", "2").code == 0
    st = e2e.cli(["status", m, "--json"])
    assert st.code == 0, st.stderr
    doc = st.json
    assert doc["parts_server"] == [2] and doc["parts_journal"] == [2] and doc["parts_missing"] == [1, 3]
    assert doc["server_source"] == "list_parts_url" and doc["seconds_left"] > 0
    human = e2e.cli(["status", m])
    assert human.code == 0 and "missing     1,3" in human.stdout and "1 of 3 parts" in human.stdout
