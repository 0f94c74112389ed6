"""``s3mpu relay`` as a process: webhook settings in --check-config, bad secrets refused (78),
SIGHUP re-reads the tokens file, --metrics-listen serves /metrics elsewhere."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import urllib3

from relay_fixtures import API_TOKENS, RELAY_SECRET, WEBHOOK_SECRET
from servers import free_port, http_ok

HTTP = urllib3.PoolManager(retries=False)


def _env(server, tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3MPU_"))}
    env.update(server.env(), HOME=str(tmp_path), S3MPU_RELAY_SECRET=RELAY_SECRET, **extra)
    return env


def s3mpu(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s3mpu", *args], capture_output=True, text=True, env=env, timeout=120)


def test_check_config_shows_webhooks_without_the_secret(rclone_server, tmp_path) -> None:
    secret = tmp_path / "whsec"
    secret.write_text(WEBHOOK_SECRET + "\n")
    env = _env(rclone_server, tmp_path)
    r = s3mpu("relay", "--check-config", "--webhook", "https://user:pw@hooks.example/in?sig=abc",
              "--webhook", "http://127.0.0.1:9/x", "--webhook-secret-file", str(secret), env=env)
    assert r.returncode == 0, r.stderr
    assert "webhooks: 2, signed (Standard Webhooks) with a 256-bit whsec_ secret" in r.stdout
    assert "https://hooks.example/in" in r.stdout and "http://127.0.0.1:9/x" in r.stdout
    for hidden in (WEBHOOK_SECRET, WEBHOOK_SECRET[6:], "pw@", "sig=abc"):
        assert hidden not in r.stdout + r.stderr


@pytest.mark.parametrize("value, why", [("whsec_***not-base64***", "not valid base64"),
                                        ("whsec_c2hvcnQ=", "too short"), ("plain-secret-0123456789", "whsec_"),
                                        (None, "needs a secret"), (WEBHOOK_SECRET, "not an http(s) URL")])
def test_bad_webhook_settings_refuse_to_start(rclone_server, tmp_path, value, why) -> None:
    env = _env(rclone_server, tmp_path, **({"S3MPU_WEBHOOK_SECRET": value} if value else {}))
    hook = "ftp://127.0.0.1:9/x" if value == WEBHOOK_SECRET else "http://127.0.0.1:9/x"
    r = s3mpu("relay", "--listen", f"127.0.0.1:{free_port()}", "--webhook", hook, env=env)
    assert r.returncode == 78, r.stderr
    assert why in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 3
    if value:
        assert value[6:] not in r.stderr


def test_sighup_reloads_tokens_and_metrics_listen(rclone_server, tmp_path) -> None:
    bucket = rclone_server.bucket()
    tokens = tmp_path / "tokens.json"

    def write(*names: str) -> None:
        tokens.write_text(json.dumps({"tokens": [{"name": n, "token": API_TOKENS[i], "bucket": bucket, "prefix": "in/"}
                                                 for i, n in enumerate(names)]}))
        os.utime(tokens, (1_000_000_000, 1_000_000_000))  # same mtime and size both times: only SIGHUP sees it

    write("alice", "bobby")
    port, mport = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "relay.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "s3mpu", "relay", "--listen", f"127.0.0.1:{port}",
                                 "--tokens", str(tokens), "--metrics-listen", f"127.0.0.1:{mport}"],
                                env=_env(rclone_server, tmp_path), stdout=subprocess.DEVNULL, stderr=err)
    try:
        for _ in range(200):
            if http_ok(url + "/healthz") or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        body = json.dumps({"bucket": bucket, "key": "in/x", "size": 10})
        bob = {"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKENS[1]}"}
        assert HTTP.request("POST", url + "/v1/mint", body=body, headers=bob).status == 201
        tokens.write_text(tokens.read_text().replace('"bobby"', '"bobbz"').replace(API_TOKENS[1], "x" * len(API_TOKENS[1])))
        os.utime(tokens, (1_000_000_000, 1_000_000_000))
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while HTTP.request("POST", url + "/v1/mint", body=body, headers=bob).status != 401:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert HTTP.request("GET", url + "/metrics").status == 404  # served on --metrics-listen instead
        text = HTTP.request("GET", f"http://127.0.0.1:{mport}/metrics").data.decode()
        assert 's3mpu_relay_requests_total{endpoint="/v1/mint",method="POST",status="201"}' in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "received SIGHUP" in text and "removed bobby" in text and '"audit":"minted"' in text
    assert API_TOKENS[1] not in text and RELAY_SECRET not in text


def test_sigterm_with_stop_delay_turns_readyz_503_while_still_serving_then_exits_0(rclone_server, tmp_path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "relay.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "s3mpu", "relay", "--listen", f"127.0.0.1:{port}",
                                 "--stop-delay", "3s"], env=_env(rclone_server, tmp_path),
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        for _ in range(200):
            if http_ok(url + "/healthz") or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert HTTP.request("GET", url + "/readyz").status == 200, log.read_text()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        fresh = urllib3.PoolManager(retries=False)  # a new connection, as a load balancer's probe opens
        ready = fresh.request("GET", url + "/readyz")
        assert ready.status == 503 and json.loads(ready.data)["status"] == "stopping"
        assert fresh.request("GET", url + "/healthz").status == 200  # still alive and serving
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "not ready for 3 s" in log.read_text()
