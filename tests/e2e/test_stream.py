"""``s3mpu put MANIFEST -``: parts read from standard input, on rclone (signatures, lengths checked).

The stream goes through a real pipe into a real ``s3mpu`` process wherever the pipe matters
(end of stream, a killed producer, a killed s3mpu); the in-process runner feeds bytes otherwise.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

MiB = 1024 * 1024
PART = 5 * MiB
E2E = Any  # the e2e fixture (tests/e2e/conftest.py)
S3MPU = [sys.executable, "-m", "s3mpu"]


@pytest.fixture
def s3(rclone_server: Any) -> Any:
    """Only rclone here: the strict server (signatures, signed lengths, expiry are checked)."""
    return rclone_server


def piped(e2e: E2E, manifest: Path, data: bytes, *args: Any, env: dict[str, str] | None = None,
          timeout: float = 120, json_out: bool = True) -> subprocess.CompletedProcess[str]:
    """A real ``s3mpu put MANIFEST -`` process reading ``data`` through a pipe."""
    p = subprocess.run(S3MPU + ["put", str(manifest), "-", *(["--json"] if json_out else []), *map(str, args)],
                       input=data,
                       env=env or e2e.user_env(), capture_output=True, timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(), p.stderr.decode())


def stream_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic, distinct per seed and per MiB (a producer that can be re-run)."""
    import random

    block = random.Random(seed).randbytes(MiB)
    return b"".join(i.to_bytes(8, "little") + block[8:] for i in range(-(-size // MiB)))[:size]


@pytest.mark.parametrize("size", [0, 1, PART, 3 * PART + 7, 3 * PART])
def test_stream_sizes_with_max_size_manifest(e2e: E2E, relay: Any, size: int) -> None:
    data = stream_bytes(size, seed=size)
    m = e2e.mint(max_size=8 * PART, relay=relay.url)
    r = piped(e2e, m, data)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["completed"] is True and doc["size"] == size and doc["parts"] == max(1, -(-size // PART))
    assert doc["bytes_sent"] == size and doc["bytes_skipped"] == 0
    assert e2e.get(m) == data


@pytest.mark.parametrize("size", [1, PART, 2 * PART + 9])
def test_stream_with_exact_size_manifest(e2e: E2E, relay: Any, size: int) -> None:
    data = stream_bytes(size, seed=size + 1)
    m = e2e.mint(size=size, relay=relay.url)
    r = piped(e2e, m, data)
    assert r.returncode == 0, r.stderr
    assert e2e.get(m) == data


def test_exact_manifest_refuses_short_and_long_streams(e2e: E2E, relay: Any) -> None:
    relay = relay.url
    m = e2e.mint(size=2 * PART + 9, relay=relay)
    short = piped(e2e, m, stream_bytes(2 * PART + 8))
    assert short.returncode == 65, short.stderr
    assert "ended after 10485768 bytes" in short.stderr and "nothing was completed" in short.stderr
    assert not e2e.exists(m)
    assert 3 not in e2e.server_parts(m)  # the short last part was held back, never sent
    m2 = e2e.mint(size=2 * PART + 9, relay=relay)
    long = piped(e2e, m2, stream_bytes(2 * PART + 10))
    assert long.returncode == 65 and "longer than" in long.stderr and "nothing was completed" in long.stderr
    assert not e2e.exists(m2)


def test_stream_longer_than_max_size(e2e: E2E, relay: Any) -> None:
    m = e2e.mint(max_size=2 * PART, relay=relay.url)
    r = piped(e2e, m, stream_bytes(2 * PART + 1))
    assert r.returncode == 65, r.stderr
    assert f"reading stopped after {2 * PART} bytes" in r.stderr and "nothing was completed" in r.stderr
    assert not e2e.exists(m)


PRODUCER = """
import os, signal, sys
from pathlib import Path
data = Path(sys.argv[1]).read_bytes()
stop = int(sys.argv[2])  # die (SIGKILL, like an OOM-killed pg_dump) after this many bytes; -1: write all
out = sys.stdout.buffer
out.write(data[:stop] if stop >= 0 else data)
out.flush()
if stop >= 0:
    os.kill(os.getpid(), signal.SIGKILL)
"""


def pipeline(e2e: E2E, manifest: Path, source: Path, stop: int, *args: Any) -> subprocess.CompletedProcess[str]:
    """``producer | s3mpu put MANIFEST - ARGS``; the producer is SIGKILLed after ``stop`` bytes (-1: never)."""
    prod = subprocess.Popen([sys.executable, "-c", PRODUCER, str(source), str(stop)], stdout=subprocess.PIPE)
    assert prod.stdout is not None
    try:
        p = subprocess.run(S3MPU + ["put", str(manifest), "-", "--json", *map(str, args)], stdin=prod.stdout,
                           env=e2e.user_env(), capture_output=True, timeout=120)
    finally:
        prod.stdout.close()
        prod.wait(30)
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(), p.stderr.decode())


@pytest.mark.parametrize("exact", [True, False], ids=["exact-manifest", "max-size-expect-size"])
def test_producer_killed_then_rerun_from_scratch(e2e: E2E, relay: Any, tmp_path: Path, exact: bool) -> None:
    size = 4 * PART + 123
    data = stream_bytes(size, seed=5)
    src = tmp_path / "dump.bin"
    src.write_bytes(data)
    if exact:
        m, extra = e2e.mint(size=size, relay=relay.url), []
    else:
        m, extra = e2e.mint(max_size=8 * PART, relay=relay.url), ["--expect-size", size]
    first = pipeline(e2e, m, src, 2 * PART + 4321, *extra)  # dies inside part 3
    assert first.returncode == 65, first.stderr
    assert f"ended after {2 * PART + 4321} bytes" in first.stderr and "nothing was completed" in first.stderr
    assert not e2e.exists(m)
    assert e2e.server_parts(m) == [1, 2]  # full parts only: the torn part 3 was held back
    again = pipeline(e2e, m, src, -1, *extra)
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["completed"] and doc["bytes_skipped"] == 2 * PART and doc["bytes_sent"] == size - 2 * PART
    assert doc["parts_skipped"] == 2 and doc["parts_uploaded"] == 3
    assert e2e.get(m) == data


def test_kill9_of_s3mpu_mid_stream_then_rerun(e2e: E2E, relay: Any) -> None:
    size = 3 * PART + 77
    data = stream_bytes(size, seed=9)
    m = e2e.mint(max_size=8 * PART, relay=relay.url)
    proc = subprocess.Popen(S3MPU + ["put", str(m), "-", "--json"], stdin=subprocess.PIPE, env=e2e.user_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(data[:2 * PART + 1])  # parts 1 and 2, and the first byte of part 3: 1 and 2 go out
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while e2e.server_parts(m) != [1, 2]:  # wait for the condition (the server holds both), not a fixed time
        assert time.monotonic() < deadline and proc.poll() is None, "parts 1 and 2 never reached the server"
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no cleanup at all
    proc.wait(10)
    proc.stdin.close()
    assert proc.returncode == -signal.SIGKILL and not e2e.exists(m)
    r = piped(e2e, m, data, "--progress", "plain", json_out=False)
    assert r.returncode == 0, r.stderr
    assert f"skipped 10.0 MiB ({2 * PART} bytes, 2 part(s))" in r.stderr  # told, on the human side
    assert "10.0 MiB already uploaded before" in r.stdout
    assert e2e.get(m) == data


def _readme_cron_script() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("# /etc/cron.daily/db-upload")
    block = readme[readme.rindex("```bash\n", 0, start) + len("```bash\n"):readme.index("```", start)]
    assert "set -o pipefail" in block and "--no-complete" in block and "s3mpu -q complete" in block
    return block


def test_readme_cron_line_never_completes_a_failed_dump(e2e: E2E, relay: Any, tmp_path: Path) -> None:
    """The README's cron script, run as written, with pg_dump, s3mpu and mail as small stand-ins on PATH."""
    src = tmp_path / "dump.bin"
    src.write_bytes(stream_bytes(2 * PART + 10, seed=3))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {"pg_dump": f'exec {sys.executable} -c "$PRODUCER" "$SRC" "$STOP"',
                       "s3mpu": f'exec {sys.executable} -m s3mpu "$@"', "mail": 'cat > "$MAILBOX"'}.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**e2e.user_env(), "PATH": f"{bin_dir}:{os.environ['PATH']}", "PRODUCER": PRODUCER, "SRC": str(src),
           "MAILBOX": str(tmp_path / "mail.txt")}

    def night(manifest: Path, stop: int) -> subprocess.CompletedProcess[bytes]:
        script = _readme_cron_script().replace("/srv/out/db.json", str(manifest))
        script = script.replace("/var/log/db-upload.json", str(tmp_path / "log.json"))
        return subprocess.run(["bash", "-c", script], env={**env, "STOP": str(stop)}, capture_output=True,
                              timeout=120)

    m = e2e.mint(max_size=8 * PART, relay=relay.url)
    failed = night(m, PART + 5)  # pg_dump is killed after 5 MiB and 5 bytes
    assert failed.returncode == 0, failed.stderr  # the script handled it
    assert "exit 137" in (tmp_path / "mail.txt").read_text()  # pg_dump's SIGKILL, not s3mpu's clean exit
    assert not e2e.exists(m)  # s3mpu saw a clean end of input, but complete never ran
    m2 = e2e.mint(max_size=8 * PART, relay=relay.url)
    (tmp_path / "mail.txt").unlink()
    ok = night(m2, -1)
    assert ok.returncode == 0, ok.stderr
    assert not (tmp_path / "mail.txt").exists()
    assert e2e.get(m2) == src.read_bytes()


def test_request_dash_mints_max_size_and_streams(rclone_server: Any, e2e: E2E) -> None:
    from relay_fixtures import API_TOKENS, relay_settings

    from s3mpu.relay.config import ApiToken, token_sha256
    from s3mpu.relay.server import start_relay

    token = API_TOKENS[0]
    policy = ApiToken("alice", token_sha256(token).hex(), e2e.bucket, "in/", 64 * MiB, 86400)
    data = stream_bytes(2 * PART + 99, seed=21)
    with start_relay(relay_settings(rclone_server), api_tokens=(policy,)) as relay:
        args = ["request", f"s3://{e2e.bucket}/in/db.dump", "-", "--relay", relay.url, "--part-size", "5M", "--json"]
        env = {**e2e.user_env(), "S3MPU_API_TOKEN": token}
        no_max = subprocess.run(S3MPU + args, input=data, env=env, capture_output=True, timeout=60)
        assert no_max.returncode == 64 and b"--max-size" in no_max.stderr
        r = subprocess.run(S3MPU + args + ["--max-size", "40M"], input=data, env=env, capture_output=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["completed"] and doc["size"] == len(data) and doc["parts"] == 3
        saved = json.loads(Path(doc["manifest"]).read_text())
        assert saved["size_is_max"] is True and saved["size"] == 40 * MiB
    body = rclone_server.client().get_object(Bucket=e2e.bucket, Key="in/db.dump")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_rerun_after_completion_reads_the_stream_and_says_done(e2e: E2E, relay: Any) -> None:
    data = stream_bytes(2 * PART + 5, seed=31)
    m = e2e.mint(max_size=8 * PART, relay=relay.url)
    assert piped(e2e, m, data).returncode == 0
    again = piped(e2e, m, data)  # cron ran twice: the upload is gone, the object is this stream
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["completed"] and doc["bytes_sent"] == 0 and doc["size"] == len(data) and doc["parts"] == 3
    other = piped(e2e, m, stream_bytes(2 * PART + 5, seed=32))
    assert other.returncode == 65 and "already completed" in other.stderr
    assert e2e.get(m) == data


def test_refused_part_stops_at_once_while_the_producer_is_still_writing(e2e: E2E, relay: Any) -> None:
    """A fatal error (here a refused signature) ends s3mpu without waiting for the producer's next bytes."""
    m = e2e.mint(max_size=8 * PART, relay=relay.url)
    doc = json.loads(m.read_text())
    url = doc["parts"][0]["url"]
    sig = url.split("X-Amz-Signature=")[1][:64]
    doc["parts"][0]["url"] = url.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
    m.write_text(json.dumps(doc))
    proc = subprocess.Popen(S3MPU + ["put", str(m), "-"], stdin=subprocess.PIPE, env=e2e.user_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(stream_bytes(PART + 1))  # part 1 goes out; the producer then stays silent, pipe open
    proc.stdin.flush()
    try:
        proc.wait(60)  # it must end by itself, its standard input still open
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        proc.stdin.close()
        proc.kill()
    assert proc.returncode == 77, err
    assert b"part 1" in err and not e2e.exists(m)
