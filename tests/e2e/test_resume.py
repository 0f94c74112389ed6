"""Resume: kill -9, Ctrl-C, expired URLs, a lost journal, a relay down at complete."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from relay_fixtures import relay_settings
from servers import free_port

from s3mpu.relay.server import start_relay

MiB = 1024 * 1024


def _kill_trials(e2e: Any, relay: Any, make_data: Any, trials: int, seed: int) -> None:
    rnd = random.Random(seed)
    for i in range(trials):
        size = 3 * 5 * MiB + rnd.randrange(1, 5000)
        data = make_data(size, name=f"kill-{i}.bin", seed=seed + i)
        m = e2e.mint(size=size, relay=relay.url)
        args = ["put", m, data, "--limit-rate", "5M", "-j", "2", "--progress", "none"]
        proc = subprocess.Popen([*__import__("conftest").S3MPU, *map(str, args)], env=e2e.user_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.2, 2.0))  # at 5 MiB/s the upload takes ~3 s after start-up
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert not e2e.exists(m), "an object appeared before complete"
        r = e2e.run(["put", m, data, "--json"])
        assert r.code == 0, r.stderr
        assert e2e.get(m) == data.read_bytes()


def test_kill9_at_random_moments_then_rerun_is_identical(e2e: Any, relay: Any, make_data: Any) -> None:
    _kill_trials(e2e, relay, make_data, trials=2, seed=11)


@pytest.mark.soak
def test_kill9_soak(e2e: Any, relay: Any, make_data: Any) -> None:
    _kill_trials(e2e, relay, make_data, trials=10, seed=99)


def _sigint_default() -> None:
    """In the child: SIGINT back to its default. A shell starts background jobs (``pytest ... &``)
    with SIGINT ignored, the child inherits that, Python then installs no KeyboardInterrupt
    handler, and Ctrl-C would do nothing. The test is about s3mpu's handling, so restore it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_cleanly_exit_130_and_resumes(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 3 * 5 * MiB
    data = make_data(size, seed=21)
    m = e2e.mint(size=size, relay=relay.url)
    args = ["put", str(m), str(data), "--limit-rate", "4M", "-j", "2", "--progress", "plain"]
    proc = subprocess.Popen([*__import__("conftest").S3MPU, *args], env=e2e.user_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the progress display's first line: the transfer is starting
    assert first.startswith("uploading "), first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, first + err
    assert "Traceback" not in err
    # the exact command as given, options included: a re-run without --limit-rate would differ
    assert f"Re-run the same command to resume: s3mpu {' '.join(args)}" in err, err
    assert not e2e.exists(m)
    r = e2e.put(m, data)
    assert r.code == 0, r.stderr
    assert e2e.get(m) == data.read_bytes()


def test_expired_manifest_is_77_then_refresh_resumes(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 4 * 5 * MiB
    data = make_data(size, seed=31)
    m = e2e.mint(size=size, relay=relay.url)
    assert e2e.put(m, data, "--parts", "1-2").code == 0
    # +5, not +2: under load (2 shared cores) building the admin's S3 client between parsing
    # --expires and signing took over 2 s, and mint refused an expiry already in the past.
    short = e2e.refresh(m, expires="+5")
    time.sleep(6)  # let the refreshed URLs expire (the server's clock decides)
    r = e2e.put(short, data)
    assert r.code == 77, r.stderr
    assert "expired" in r.stderr and f"s3mpu mint --refresh {short}" in r.stderr
    assert e2e.server_parts(m) == [1, 2] and not e2e.exists(m)
    fresh = e2e.refresh(short, expires="1h")
    r = e2e.put(fresh, data)
    assert r.code == 0, r.stderr
    assert r.json["parts_skipped"] == 2 and r.json["parts_uploaded"] == 2
    assert e2e.get(m) == data.read_bytes()


def test_expired_mid_transfer_on_strict_server_is_fatal(rclone_server: Any, make_data: Any) -> None:
    """rclone answers an expired part URL with 400 AccessDenied: the engine must stop, not retry."""
    from s3mpu.user.httpclient import HttpClient
    from s3mpu.manifest import loads
    from s3mpu.user.transfer import PartTask, RetryPolicy, Transfer

    from relay_fixtures import mint_for
    from s3mpu.units import parse_expires

    bucket = rclone_server.bucket()
    data = make_data(5 * MiB + 1)
    m = mint_for(rclone_server, bucket, "exp.bin", None, size=5 * MiB + 1, part_size=5 * MiB,
                 expires=parse_expires("+2"))
    m = loads(m.to_json())
    time.sleep(3)
    fd = os.open(data, os.O_RDONLY)
    try:
        tasks = [PartTask(p.number, p.offset, p.size, p.url) for p in m.parts]
        out = Transfer(fd, HttpClient(2), jobs=2, retry=RetryPolicy(retries=3, base=0.01)).run(tasks)
    finally:
        os.close(fd)
    assert out.fatal is not None and out.fatal.exit_code == 77, out.fatal
    assert not out.done


def _journal_dir() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "s3mpu" / "journal"


def test_journal_lost_resumes_from_presigned_listparts(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 4 * 5 * MiB
    data = make_data(size, seed=41)
    m = e2e.mint(size=size, relay=relay.url)
    assert e2e.put(m, data, "--parts", "1-2").code == 0
    shutil.rmtree(_journal_dir())
    r = e2e.put(m, data)
    assert r.code == 0, r.stderr
    assert r.json["parts_skipped"] == 2 and r.json["parts_uploaded"] == 2
    assert e2e.get(m) == data.read_bytes()


def test_journal_lost_resumes_through_relay_status(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 4 * 5 * MiB
    data = make_data(size, seed=42)
    m = e2e.mint(size=size, relay=relay.url)
    doc = json.loads(m.read_text())
    doc["list_parts_url"] = None  # no presigned listing: only the relay knows
    m.write_text(json.dumps(doc))
    assert e2e.put(m, data, "--parts", "1,3").code == 0
    shutil.rmtree(_journal_dir())
    r = e2e.put(m, data)
    assert r.code == 0, r.stderr
    assert r.json["parts_skipped"] == 2 and r.json["parts_uploaded"] == 2
    assert e2e.get(m) == data.read_bytes()


def test_changed_file_is_not_resumed_from_journal(e2e: Any, relay: Any, make_data: Any) -> None:
    size = 2 * 5 * MiB
    data = make_data(size, seed=43)
    m = e2e.mint(size=size, relay=relay.url)
    assert e2e.put(m, data, "--parts", "1").code == 0
    os.utime(data, ns=(1, 1))  # same bytes, other mtime: the journal no longer vouches for it
    r = e2e.put(m, data)
    assert r.code == 0, r.stderr
    assert "changed since the last run" in r.stderr
    assert r.json["parts_skipped"] == 1  # re-verified against the server's ETag instead
    assert e2e.get(m) == data.read_bytes()


def test_relay_down_at_complete_is_75_then_complete_later(e2e: Any, make_data: Any) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    size = 2 * 5 * MiB + 9
    data = make_data(size, seed=51)
    m = e2e.mint(size=size, relay=url)
    r = e2e.put(m, data)
    assert r.code == 75, r.stderr
    assert f"s3mpu complete {m}" in r.stderr
    assert not e2e.exists(m) and e2e.server_parts(m) == [1, 2, 3]
    handle = start_relay(relay_settings(e2e.s3), port=port)
    try:
        c = e2e.cli(["complete", m, "--json"])  # the user, no credentials: through the relay
        assert c.code == 0, c.stderr
        assert c.json["size"] == size
    finally:
        handle.stop()
    assert e2e.get(m) == data.read_bytes()


def test_relay_down_complete_directly_with_admin_credentials(e2e: Any, make_data: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    size = 5 * MiB + 9
    data = make_data(size, seed=52)
    m = e2e.mint(size=size, relay=url)
    assert e2e.put(m, data).code == 75
    c = e2e.cli(["complete", m, "--json"], env=e2e.admin_env())
    assert c.code == 0, c.stderr
    assert e2e.get(m) == data.read_bytes()
    st = e2e.cli(["status", m, "--json"])
    assert st.code == 0
