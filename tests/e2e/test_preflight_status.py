"""Refusals before the first byte (manifest URLs, relay preflight) and a truthful status (issue 11 §3-§4)."""
from __future__ import annotations

import json
from typing import Any

import pytest

MiB = 1024 * 1024
PART = 5 * MiB


def test_swapped_urls_in_the_manifest_are_refused_before_any_byte(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 2 * PART
    data = make_data(size, seed=81)
    m = e2e.mint(size=size, relay=relay.url)
    doc = json.loads(m.read_text())
    doc["parts"][0]["url"], doc["parts"][1]["url"] = doc["parts"][1]["url"], doc["parts"][0]["url"]
    m.write_text(json.dumps(doc))
    r = e2e.put(m, data)
    assert r.code == 65, r.stderr
    assert "parts[0].url" in r.stderr and "partNumber=2" in r.stderr
    assert e2e.server_parts(m) == []


def test_edited_key_is_refused_not_reported_as_uploaded(e2e: Any, relay: Any, make_data: Any) -> None:
    data = make_data(PART, seed=82)
    m = e2e.mint(size=PART, relay=relay.url, key="t/edit.bin")
    doc = json.loads(m.read_text())
    doc["key"] = "t/hacked.bin"
    m.write_text(json.dumps(doc))
    r = e2e.put(m, data)
    assert r.code == 65, r.stderr
    assert "hacked.bin" in r.stderr and "uploaded" not in r.stdout
    held = e2e.s3.client().list_parts(Bucket=e2e.bucket, Key="t/edit.bin", UploadId=doc["upload_id"])
    assert held.get("Parts", []) == []


def test_localhost_and_127_0_0_1_are_one_endpoint_for_the_relay(e2e: Any, relay: Any, make_data: Any) -> None:
    """Minted against http://localhost:PORT, relay configured with http://127.0.0.1:PORT: it completes."""
    size = PART + 7
    data = make_data(size, seed=83)
    m = e2e.mint(size=size, relay=relay.url, endpoint=e2e.s3.endpoint.replace("127.0.0.1", "localhost"))
    assert json.loads(m.read_text())["endpoint"].startswith("http://localhost:")
    r = e2e.put(m, data)
    assert r.code == 0, r.stderr
    assert e2e.get(m) == data.read_bytes()


@pytest.mark.parametrize("s3", ["rclone"], indirect=True)
def test_relay_refusing_the_token_stops_before_the_first_byte(e2e: Any, relay: Any, make_data: Any) -> None:
    data = make_data(PART, seed=84)
    m = e2e.mint(size=PART, relay=relay.url)
    doc = json.loads(m.read_text())
    head, _, sig = doc["relay"]["token"].rpartition(".")
    doc["relay"]["token"] = f"{head}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    m.write_text(json.dumps(doc))
    r = e2e.put(m, data)
    assert r.code == 77, r.stderr
    assert "nothing was sent" in r.stderr and "mint --refresh" not in r.stderr
    assert "minted for this relay" in r.stderr
    assert e2e.server_parts(m) == []


def test_relay_for_another_endpoint_stops_before_the_first_byte(moto_server: Any, rclone_server: Any,
                                                                relay_for: Any, tmp_path: Any, make_data: Any) -> None:
    from conftest import E2E as Harness  # tests/e2e/conftest.py

    e2e = Harness(moto_server, tmp_path, moto_server.bucket())
    data = make_data(PART, seed=85)
    m = e2e.mint(size=PART, relay=relay_for(moto_server).url)
    r = e2e.put(m, data, "--relay", relay_for(rclone_server).url)
    assert r.code == 77, r.stderr
    assert "nothing was sent" in r.stderr and "--relay" in r.stderr.splitlines()[-1]
    assert e2e.server_parts(m) == []


def test_status_in_progress_completed_and_aborted(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 2 * PART
    data = make_data(size, seed=86)
    m = e2e.mint(size=size, relay=relay.url)
    assert e2e.put(m, data, "--parts", "1", "--no-complete").code == 0
    st = e2e.cli(["status", m, "--json"])
    assert st.code == 0 and st.json["state"] == "in_progress" and st.json["parts_missing"] == [2]
    assert e2e.put(m, data).code == 0
    done = e2e.cli(["status", m, "--json"])
    assert done.code == 0, done.stderr
    assert done.json["state"] == "completed" and done.json["size"] == size and done.json["etag"]
    assert done.json["parts_missing"] == []
    human = e2e.cli(["status", m])
    assert "completed" in human.stdout and "missing" not in human.stdout

    m2 = e2e.mint(size=size, relay=relay.url)
    assert e2e.put(m2, data, "--parts", "1", "--no-complete").code == 0
    doc = json.loads(m2.read_text())  # aborted by another tool (s3cmd abortmp, a lifecycle rule)
    e2e.s3.client().abort_multipart_upload(Bucket=e2e.bucket, Key=doc["key"], UploadId=doc["upload_id"])
    gone = e2e.cli(["status", m2, "--json"])
    assert gone.code == 66, gone.stderr
    assert gone.json["state"] == "aborted" and "no longer exists" in gone.stderr


@pytest.mark.parametrize("s3", ["moto"], indirect=True)
def test_status_without_relay_says_gone_not_missing_everything(e2e: Any, make_data: Any, tmp_path: Any) -> None:
    data = make_data(PART, seed=87)
    m = e2e.mint(size=PART)
    assert e2e.put(m, data).code == 0
    admin_elsewhere = {**e2e.admin_env(), "XDG_STATE_HOME": str(tmp_path / "admin-machine")}
    assert e2e.cli(["complete", m], env=admin_elsewhere).code == 0
    st = e2e.cli(["status", m, "--json"])  # no relay to ask, and this machine did not see it complete
    assert st.code == 66 and st.json["state"] == "gone" and st.json["parts_missing"] == []
    here = e2e.cli(["status", m, "--json"], env={"XDG_STATE_HOME": str(tmp_path / "admin-machine")})
    assert here.code == 0 and here.json["state"] == "completed" and here.json["size"] == PART
