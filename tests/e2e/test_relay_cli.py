"""``s3mpu relay`` as a real process and ``s3mpu request`` against it, on rclone (strict SigV4)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from relay_fixtures import API_TOKENS, RELAY_SECRET, SENSITIVE
from servers import SECRET_KEY, free_port, http_ok

MiB = 1024 * 1024


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "S3MPU_RELAY_SECRET"}
    env.update(extra)
    return env


def s3mpu(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s3mpu", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def relay_proc(rclone_server, tmp_path):
    bucket = rclone_server.bucket()
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"name": "alice", "token": API_TOKENS[0], "bucket": bucket,
                                              "prefix": "in/", "max_size": "64M", "max_expires": "1d"}]}))
    secret = tmp_path / "secret"
    secret.write_text(RELAY_SECRET + "\n")
    port = free_port()
    log = tmp_path / "relay.log"
    env = _env(**rclone_server.env())
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "s3mpu", "relay", "--listen", f"127.0.0.1:{port}",
                                 "--secret-file", str(secret), "--tokens", str(tokens), "--seed-api", bucket],
                                env=env, stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if http_ok(url + "/healthz") or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, log.read_text()
    yield url, bucket, proc, log
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_request_through_relay_process(relay_proc, rclone_server, make_data, tmp_path) -> None:
    url, bucket, proc, log = relay_proc
    path = make_data(6 * MiB + 11, name="movie.mp4", seed=9)
    user = _env(HOME=str(tmp_path / "user"), S3MPU_API_TOKEN=API_TOKENS[0])  # no S3 credentials at all
    r = s3mpu("request", f"s3://{bucket}/in/movie.mp4", str(path), "--relay", url, "--part-size", "5M",
              "--json", "--progress", "none", env=user)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["completed"] is True and out["size"] == path.stat().st_size and out["parts"] == 2
    assert oct(os.stat(out["manifest"]).st_mode & 0o777) == "0o600"
    admin = rclone_server.client()
    assert admin.get_object(Bucket=bucket, Key="in/movie.mp4")["Body"].read() == path.read_bytes()
    assert admin.head_object(Bucket=bucket, Key="in/movie.mp4")["ContentType"] == "video/mp4"

    refused = s3mpu("request", f"s3://{bucket}/elsewhere/x", str(path), "--relay", url, env=user)
    assert refused.returncode == 77 and "may not mint" in refused.stderr
    bad = s3mpu("request", f"s3://{bucket}/in/x", str(path), "--relay", url, "--token", "wrong", env=user)
    assert bad.returncode == 77
    down = s3mpu("request", f"s3://{bucket}/in/x", str(path), "--relay", f"http://127.0.0.1:{free_port()}", env=user)
    assert down.returncode == 75

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    text = log.read_text()
    access = [json.loads(line.split(" INFO ", 1)[1]) for line in text.splitlines() if "s3mpu.relay.access" in line]
    assert {a["path"] for a in access} >= {"/v1/mint", "/v1/complete"}
    for secret in (RELAY_SECRET, SECRET_KEY, *API_TOKENS):
        assert secret not in text
    for pattern in SENSITIVE:
        assert not pattern.search(text), pattern.pattern
    assert "stopped" in text


def test_relay_refuses_to_start_without_secret_or_credentials(rclone_server, tmp_path) -> None:
    port = str(free_port())
    r = s3mpu("relay", "--listen", f"127.0.0.1:{port}", env=_env(**rclone_server.env(), HOME=str(tmp_path)))
    assert r.returncode == 78 and "secret" in r.stderr
    r = s3mpu("relay", "--listen", f"127.0.0.1:{port}",
              env=_env(S3MPU_RELAY_SECRET=RELAY_SECRET, HOME=str(tmp_path), AWS_CONFIG_FILE="/nonexistent",
                       AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_EC2_METADATA_DISABLED="true"))
    assert r.returncode == 78 and "credentials" in r.stderr
    r = s3mpu("relay", "--listen", "nonsense", env=_env(S3MPU_RELAY_SECRET=RELAY_SECRET, HOME=str(tmp_path)))
    assert r.returncode == 64


def test_start_up_message_printed_once(relay_proc) -> None:
    url, _bucket, proc, log = relay_proc
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    lines = [line for line in log.read_text().splitlines() if "listening on" in line]
    assert len(lines) == 1, lines


def test_relay_refuses_weak_secret_and_open_seed_api(rclone_server, tmp_path) -> None:
    env = _env(**rclone_server.env(), HOME=str(tmp_path))
    port = str(free_port())
    weak = s3mpu("relay", "--listen", f"127.0.0.1:{port}", env={**env, "S3MPU_RELAY_SECRET": "x" * 20})
    assert weak.returncode == 78 and "weak" in weak.stderr and "openssl rand" in weak.stderr
    short = s3mpu("relay", "--listen", f"127.0.0.1:{port}", env={**env, "S3MPU_RELAY_SECRET": "Ab1-cdefghij"})
    assert short.returncode == 78 and "weak" in short.stderr
    ok = s3mpu("relay", "--insecure-secret", "--check-config", env={**env, "S3MPU_RELAY_SECRET": "Ab1-cdefghij"})
    assert ok.returncode == 0 and "weak" in ok.stderr, ok.stderr
    comma = s3mpu("relay", "--check-config", env={**env, "S3MPU_RELAY_SECRET": f"{RELAY_SECRET},{RELAY_SECRET}x"})
    assert comma.returncode == 0 and "comma" in comma.stderr, comma.stderr
    strong = {**env, "S3MPU_RELAY_SECRET": RELAY_SECRET}
    bucket = rclone_server.bucket()
    for extra in ([], ["--seed-api-open"], ["--seed-prefix", "drop/"]):
        r = s3mpu("relay", "--listen", f"127.0.0.1:{port}", "--seed-api", bucket, *extra, env=strong)
        assert r.returncode == 78 and "overwrite" in r.stderr and "--seed-prefix" in r.stderr, r.stderr
    r = s3mpu("relay", "--check-config", "--seed-api", bucket, "--seed-api-open", "--seed-prefix", "drop/", env=strong)
    assert r.returncode == 0 and "open, under prefix 'drop/'" in r.stdout


def test_check_config(rclone_server, tmp_path) -> None:
    env = _env(**rclone_server.env(), HOME=str(tmp_path), S3MPU_RELAY_SECRET=RELAY_SECRET)
    bucket = rclone_server.bucket()
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"name": "alice", "token": API_TOKENS[0], "bucket": bucket}]}))
    r = s3mpu("relay", "--check-config", "--tokens", str(tokens), "--connection-limit", "77", env=env)
    assert r.returncode == 0, r.stderr
    for text in ("bucket " + bucket + " reachable", "connection-limit: 77", "max-body: 2.0 MiB", "request-timeout: 20 s",
                 "s3-attempts: 3", "configuration OK"):
        assert text in r.stdout, (text, r.stdout)
    assert RELAY_SECRET not in r.stdout + r.stderr and API_TOKENS[0] not in r.stdout + r.stderr
    problems = {
        "bad tokens file": (["--tokens", str(tmp_path / "missing.json")], {}),
        "unknown bucket": (["--seed-api", "no-such-bucket", "--seed-api-open", "--seed-prefix", "p/"], {}),
        "S3 down": (["--s3-attempts", "1", "--s3-connect-timeout", "1"],
                    {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}),
        "weak secret": ([], {"S3MPU_RELAY_SECRET": "short"}),
    }
    for what, (args, extra) in problems.items():
        r = s3mpu("relay", "--check-config", *args, env={**env, **extra})
        assert r.returncode == 78, (what, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 3, (what, r.stderr)
