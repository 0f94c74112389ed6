"""``s3mpu verify MANIFEST FILE`` on moto and rclone: 0 for the same bytes, 65 for others, 66 before complete."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e.conftest import E2E, MiB


def test_verify_matches_the_uploaded_file_and_refuses_another(e2e: E2E, make_data: Any, relay: Any) -> None:
    data = make_data(11 * MiB)
    m = e2e.mint(size=11 * MiB, relay=relay.url)
    assert e2e.put(m, data).code == 0
    ok = e2e.cli(["verify", m, data, "--json"])
    assert ok.code == 0, ok.stderr
    assert ok.json["match"] and ok.json["via"] == "relay" and ok.json["size"] == 11 * MiB
    raw = bytearray(data.read_bytes())
    raw[7 * MiB] ^= 1  # one bit in part 2: same size, other bytes
    other = e2e.tmp / "other.bin"
    other.write_bytes(raw)
    bad = e2e.cli(["verify", m, other])
    assert bad.code == 65 and "differs" in bad.stderr, bad.stderr


def test_verify_before_complete_is_66_naming_the_put_and_a_bundle_is_refused(e2e: E2E, make_data: Any,
                                                                             relay: Any, tmp_path: Path) -> None:
    data = make_data(6 * MiB)
    m = e2e.mint(size=6 * MiB, relay=relay.url)
    assert e2e.put(m, data, "--no-complete").code == 0
    r = e2e.cli(["verify", m, data])
    assert r.code == 66 and "not complete yet: 2 of 2 parts" in r.stderr and "s3mpu put" in r.stderr
    e2e.cli(["abort", m])
    gone = e2e.cli(["verify", m, data])
    assert gone.code == 66 and "aborted" in gone.stderr
    fake = tmp_path / "b.json"
    fake.write_text('{"format": "s3mpu.bundle/1"}')
    assert e2e.cli(["verify", fake, data]).code == 64


def test_verify_without_a_relay_uses_this_machine_s_record_or_says_it_cannot(e2e: E2E, make_data: Any) -> None:
    data = make_data(1000)
    m = e2e.mint(size=1000)
    assert e2e.put(m, data, "--no-complete").code == 0
    r = e2e.cli(["verify", m, data])
    assert r.code == 78 and "no record" in r.stderr
    assert e2e.cli(["complete", m], env=e2e.admin_env()).code == 0  # the admin completes; the note is local
    ok = e2e.cli(["verify", m, data, "--json"])
    assert ok.code == 0 and ok.json["via"].startswith("this machine"), ok.stderr
