"""Many relays, one store: any relay serves any manifest, quotas hold across them, one webhook per event;
and the relay under gunicorn with several workers (docs/relay.md's recipe), metrics summed across workers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import urllib3
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook

from relay_fixtures import API_TOKENS, RELAY_SECRET, WEBHOOK_SECRET, WebhookReceiver, put_parts, relay_settings
from s3mpu.relay.config import ApiToken, token_sha256
from s3mpu.relay.options import ServiceOptions
from s3mpu.relay.server import start_relay
from s3mpu.relay.webhooks import parse_secret
from servers import free_port, http_ok

HTTP = urllib3.PoolManager(retries=False)


def post(url: str, path: str, body: dict, token: str | None = None):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    r = HTTP.request("POST", url + path, body=json.dumps(body), headers=headers, timeout=30)
    return r.status, json.loads(r.data)


def test_two_relays_share_manifests_quotas_and_send_one_webhook(rclone_server) -> None:
    bucket = rclone_server.bucket()
    policy = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "in/", max_uploads=2),)
    receiver = WebhookReceiver([204])
    relays = [start_relay(relay_settings(rclone_server), api_tokens=policy,
                          service=ServiceOptions(webhooks=(receiver.url,), webhook_secret=parse_secret(WEBHOOK_SECRET)))
              for _ in range(2)]
    a, b = relays
    try:
        s1, m1 = post(a.url, "/v1/mint", {"bucket": bucket, "key": "in/one", "size": 100}, API_TOKENS[0])
        s2, _m2 = post(b.url, "/v1/mint", {"bucket": bucket, "key": "in/two", "size": 100}, API_TOKENS[0])
        s3, err = post(a.url, "/v1/mint", {"bucket": bucket, "key": "in/three", "size": 100}, API_TOKENS[0])
        assert (s1, s2, s3) == (201, 201, 429), err
        metrics = HTTP.request("GET", a.url + "/metrics").data.decode()
        assert _metric(metrics, "s3mpu_relay_refusals_total", reason="quota") == 1
        from s3mpu.manifest import Manifest

        manifest = Manifest.from_dict(m1)
        assert manifest.relay is not None and manifest.relay.url == a.url
        parts = put_parts(manifest, b"1" * 100)
        assert post(b.url, "/v1/complete", {"token": manifest.relay.token, "parts": parts})[0] == 200  # through B
        assert post(a.url, "/v1/complete", {"token": manifest.relay.token, "parts": parts})[0] == 200  # retried on A
        received = receiver.wait(3)
        time.sleep(0.5)  # a second upload.completed would arrive by now
        types = [json.loads(body)["type"] for _h, body in receiver.received]
        assert sorted(types) == ["upload.completed", "upload.minted", "upload.minted"], types
        for headers, body in received:
            Webhook(WEBHOOK_SECRET).verify(body, headers)
    finally:
        for r in relays:
            r.stop()
        receiver.close()


def _metric(text: str, name: str, **labels: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_gunicorn_with_two_workers_sums_metrics(rclone_server, tmp_path) -> None:
    """docs/relay.md's gunicorn recipe, run: two workers, PROMETHEUS_MULTIPROC_DIR, the live tokens file."""
    bucket = rclone_server.bucket()
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"name": "alice", "token": API_TOKENS[0], "bucket": bucket,
                                              "prefix": "in/"}]}))
    prom = tmp_path / "prom"
    prom.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3MPU_"))}
    env.update(rclone_server.env(), S3MPU_RELAY_SECRET=RELAY_SECRET, S3MPU_RELAY_PUBLIC_URL=url,
               S3MPU_RELAY_TOKENS=str(tokens), PROMETHEUS_MULTIPROC_DIR=str(prom))
    log = tmp_path / "gunicorn.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
                                 "--graceful-timeout", "5", "s3mpu.relay.wsgi:app"], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        for _ in range(300):
            if http_ok(url + "/healthz") or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        for _ in range(20):  # fresh connections: the two workers share them
            assert urllib3.PoolManager(retries=False).request("GET", url + "/healthz").status == 200
        assert post(url, "/v1/mint", {"bucket": bucket, "key": "in/g", "size": 10}, API_TOKENS[0])[0] == 201
        assert HTTP.request("GET", url + "/readyz").status == 200
        for _ in range(3):  # whichever worker answers, it sums what every worker counted
            text = urllib3.PoolManager(retries=False).request("GET", url + "/metrics").data.decode()
            assert _metric(text, "s3mpu_relay_requests_total", endpoint="/healthz") >= 20
            assert _metric(text, "s3mpu_relay_uploads_minted_total") == 1
        pids = {p.name.rsplit("_", 1)[-1] for p in prom.iterdir()}
        assert len(pids) >= 2, sorted(p.name for p in prom.iterdir())  # both workers counted something
    finally:
        proc.terminate()
        proc.wait(15)
    assert "Traceback" not in log.read_text()
