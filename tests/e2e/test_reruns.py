"""Every re-run converges (issue 11, §2-§4): one run per upload, repair, refusals before the first byte."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from s3mpu.manifest import load
from s3mpu.user.progress import NullProgress
from s3mpu.user.upload import upload

MiB = 1024 * 1024
PART = 5 * MiB


class Gate(NullProgress):
    """Holds the upload at part 1 (hashed, not sent) until released: a run that is surely in progress."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def part_started(self, number: int, size: int) -> None:
        self.reached.set()
        assert self.release.wait(60)


def test_second_put_of_one_manifest_exits_75_naming_the_pid(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 2 * PART
    data = make_data(size, seed=71)
    m = e2e.mint(size=size, relay=relay.url)
    gate = Gate()
    first: dict[str, Any] = {}

    def run() -> None:
        try:
            first["result"] = upload(load(m), data, jobs=1, progress=gate, manifest_path=str(m))
        except Exception as exc:  # noqa: BLE001 - reported by the assertions below
            first["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    assert gate.reached.wait(30)
    try:
        r = e2e.put(m, data)
    finally:
        gate.release.set()
        t.join(60)
    assert r.code == 75, r.stderr
    assert f"another s3mpu put (pid {os.getpid()}) is uploading this manifest; nothing was sent" in r.stderr
    assert "--parts" in r.stderr
    assert "error" not in first, first.get("error")
    assert first["result"].completed and e2e.get(m) == data.read_bytes()
    again = e2e.put(m, data)  # the lock went with the first run: a re-run is fine (already completed)
    assert again.code == 0, again.stderr


@pytest.mark.parametrize("s3", ["moto"], indirect=True)
@pytest.mark.parametrize("where", ["xdg_is_a_file", "local_state_is_a_file"])
def test_unusable_state_dir_is_78_nothing_sent(e2e: Any, make_data: Any, tmp_path: Path, where: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_data(PART + 1, seed=72)
    m = e2e.mint(size=PART + 1)
    if where == "xdg_is_a_file":
        blocker = tmp_path / "state-file"
        monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    else:
        monkeypatch.delenv("XDG_STATE_HOME")
        blocker = Path(os.environ["HOME"]) / ".local" / "state"
        blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory")
    r = e2e.put(m, data)
    assert r.code == 78, r.stderr
    assert str(blocker) in r.stderr and "XDG_STATE_HOME" in r.stderr and "nothing was sent" in r.stderr
    assert "unexpected" not in r.stderr
    assert e2e.server_parts(m) == []


def test_journal_says_done_but_server_holds_other_bytes_is_repaired(e2e: Any, relay: Any, make_data: Any,
                                                                    tmp_path: Path) -> None:
    """Machine B uploaded part 2 from another file after machine A journalled it: A's re-run re-sends it."""
    size = 3 * PART
    data = make_data(size, seed=73)
    other = make_data(size, name="other.bin", seed=74)
    m = e2e.mint(size=size, relay=relay.url)
    assert e2e.put(m, data, "--parts", "1-2", "--no-complete").code == 0
    b_env = {"XDG_STATE_HOME": str(tmp_path / "machine-b")}
    b = e2e.cli(["put", m, other, "--parts", "2", "--no-complete", "--json", "--retries", "0"], env=b_env)
    if e2e.s3.name == "rclone":  # rclone cannot replace part 2 at all: B is told so, A's bytes stay
        assert b.code == 65 and "cannot replace part 2 with different bytes" in b.stderr, b.stderr
    else:
        assert b.code == 0, b.stderr
    st = e2e.cli(["status", m, "--json"])
    assert st.code == 0, st.stderr
    assert st.json["parts_mismatched"] == ([] if e2e.s3.name == "rclone" else [2])
    r = e2e.put(m, data)
    assert r.code == 0, r.stderr
    if e2e.s3.name != "rclone":
        assert "other bytes than this file's for part(s) 2" in r.stderr
        assert r.json["parts_uploaded"] == 2  # part 2 again, and part 3
    assert e2e.get(m) == data.read_bytes()


@pytest.mark.parametrize("s3", ["rclone"], indirect=True)
def test_server_that_cannot_replace_a_part_is_65_at_once(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 2 * PART
    data = make_data(size, seed=75)
    m = e2e.mint(size=size, relay=relay.url)
    assert e2e.put(m, data, "--parts", "1", "--no-complete").code == 0
    with data.open("r+b") as fh:  # other bytes in part 1, same size
        fh.write(b"changed!")
    r = e2e.put(m, data, "--retries", "2")
    assert r.code == 65, r.stderr
    assert "this server cannot replace part 1 with different bytes" in r.stderr
    assert "Restore the original file" in r.stderr and "Retry later" not in r.stderr
    assert not e2e.exists(m)


def test_no_complete_with_parts_names_what_is_missing(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 4 * PART
    data = make_data(size, seed=76)
    m = e2e.mint(size=size, relay=relay.url)
    r = e2e.cli(["put", m, data, "--parts", "1-2", "--no-complete"])
    assert r.code == 0, r.stderr
    out = r.stdout + r.stderr
    assert "all 2 part(s) uploaded" not in out
    assert "part(s) 1-2 of 4 uploaded; part(s) 3-4 still missing" in out and "--parts 3-4" in out
    r = e2e.cli(["put", m, data, "--parts", "3-4", "--no-complete"])
    assert "part(s) 3-4 of 4 uploaded; all 4 parts are on the server now; complete with: s3mpu complete" in r.stdout


@pytest.mark.parametrize("s3", ["moto"], indirect=True)
def test_no_relay_says_so_once_and_json_says_not_completed(e2e: Any, make_data: Any) -> None:
    data = make_data(PART + 3, seed=77)
    m = e2e.mint(size=PART + 3)
    r = e2e.cli(["put", m, data])
    assert r.code == 0, r.stderr
    assert (r.stdout + r.stderr).count("this manifest names no relay") == 1
    j = e2e.put(m, data)
    assert j.code == 0 and j.json["completed"] is False


@pytest.mark.parametrize("s3", ["moto"], indirect=True)
def test_refused_put_of_another_file_leaves_the_journal_alone(e2e: Any, relay: Any, make_data: Any,
                                                              tmp_path: Path) -> None:
    """Issue 12: after a refused put of another file, the next put of the right one must not say it changed."""
    size = 2 * PART
    small = make_data(size, name="small.bin", seed=78)
    plan = tmp_path / "plan.json"
    assert e2e.cli(["plan", small, "--part-size", "5M", "-o", plan]).code == 0
    m = e2e.mint(plan=plan, relay=relay.url)
    assert e2e.put(m, small, "--parts", "1", "--no-complete").code == 0
    other = make_data(size, name="other.bin", seed=79)
    refused = e2e.put(m, other)
    assert refused.code == 65 and "nothing was sent" in refused.stderr
    r = e2e.put(m, small)
    assert r.code == 0, r.stderr
    assert "changed since the last run" not in r.stderr
    assert r.json["parts_skipped"] == 1 and e2e.get(m) == small.read_bytes()


@pytest.mark.parametrize("s3", ["rclone"], indirect=True)
def test_relay_killed_mid_complete_says_it_may_be_complete(e2e: Any, relay: Any, make_data: Any) -> None:
    """The relay completes, then its answer is lost (every time): 75, and the message says the truth."""
    from faultproxy import FaultProxy

    proxy = FaultProxy(relay.url, plan=["pass"] + ["lose"] * 4, methods=("POST",))  # status, complete + 3 retries
    try:
        size = PART + 5
        data = make_data(size, seed=80)
        m = e2e.mint(size=size, relay=proxy.url)
        r = e2e.put(m, data)
        assert r.code == 75, r.stderr
        assert "the upload may already be complete" in r.stderr
        assert f"s3mpu put {m} {data}" in r.stderr
        assert proxy.applied("lose") == 4 and e2e.exists(m)
        proxy.set_plan([])
        again = e2e.put(m, data)
        assert again.code == 0, again.stderr
        assert again.json["completed"] is True and again.json["bytes_sent"] == 0
    finally:
        proxy.stop()
    assert e2e.get(m) == data.read_bytes()
