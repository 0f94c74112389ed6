"""Re-running the same ``s3mpu request`` resumes its kept manifest instead of starting (and orphaning) another."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from faultproxy import FaultProxy
from relay_fixtures import API_TOKENS, relay_settings
from s3mpu.relay.config import ApiToken, token_sha256
from s3mpu.relay.server import start_relay

MiB = 1024 * 1024


@pytest.mark.parametrize("s3", ["moto"], indirect=True)
def test_request_rerun_resumes_the_kept_upload(e2e: Any, make_data: Any, tmp_path: Path) -> None:
    token = ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), e2e.bucket, "in/", 64 * MiB, 86400)
    data = make_data(2 * 5 * MiB + 1, seed=91)
    proxy = FaultProxy(e2e.s3.endpoint, plan=["500", "500", "500"], methods=("PUT",))  # the first run's parts fail
    env = {"S3MPU_API_TOKEN": API_TOKENS[0]}
    args = ["request", f"s3://{e2e.bucket}/in/a.bin", data, "--part-size", "5M", "-j", "1", "--retries", "0",
            "--json"]
    try:
        with start_relay(relay_settings(e2e.s3, endpoint_url=proxy.url), api_tokens=(token,)) as relay:
            first = e2e.cli([*args, "--relay", relay.url], env=env)
            assert first.code in (2, 75), first.stderr
            uploads = e2e.s3.client().list_multipart_uploads(Bucket=e2e.bucket).get("Uploads", [])
            assert len(uploads) == 1
            proxy.set_plan([])
            again = e2e.cli([*args, "--relay", relay.url], env=env)
            assert again.code == 0, again.stderr
            assert again.json["upload_id"] == uploads[0]["UploadId"]
            assert e2e.s3.client().list_multipart_uploads(Bucket=e2e.bucket).get("Uploads", []) == []
            third = e2e.cli([*args, "--relay", relay.url], env=env)  # done: the same command says so, sends nothing
            assert third.code == 0 and third.json["upload_id"] == uploads[0]["UploadId"]
            assert third.json["bytes_sent"] == 0 and third.json["completed"] is True
    finally:
        proxy.stop()
    body = e2e.s3.client().get_object(Bucket=e2e.bucket, Key="in/a.bin")["Body"].read()
    assert body == data.read_bytes()
    assert json.loads(again.stdout)["completed"] is True
