"""``s3mpu put MANIFEST -`` keeps its promise on memory: peak RSS under ``--memory`` plus a small constant.

A stream's parts must be buffered (a pipe cannot be re-read for a retry), so memory is
``--memory`` (parts in flight) plus the interpreter. A real ``s3mpu`` process reads 1 GiB from
a pipe into 64 MiB parts under ``--memory 256M`` and sends them to ``rclone serve s3``; its peak
RSS comes from ``wait4`` through the same bare launcher as tests/test_memory.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from s3mpu import manifest as manifests
from s3mpu.admin.mint import MintRequest, mint

MiB = 1 << 20
GiB = 1 << 30

LAUNCHER = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, ru = os.wait4(pid, 0)
sys.stderr.write(f"\\nEXIT-RSS {os.waitstatus_to_exitcode(status)} {ru.ru_maxrss}\\n")
"""


def _user_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "S3MPU_RELAY_SECRET"}


@pytest.mark.soak
def test_stream_of_1gib_with_64mib_parts_stays_under_memory_plus_40mib(rclone_server: Any, tmp_path: Path) -> None:
    client = rclone_server.client()
    bucket = rclone_server.bucket("memstream")
    m = mint(client, MintRequest(bucket=bucket, key="stream.bin", max_size=2 * GiB, part_size=64 * MiB),
             endpoint=rclone_server.endpoint, region=rclone_server.region)
    path = tmp_path / "stream.json"
    manifests.dump(m, str(path))
    producer = subprocess.Popen(["head", "-c", str(GiB), "/dev/zero"], stdout=subprocess.PIPE)
    try:
        proc = subprocess.run([sys.executable, "-S", "-I", "-c", LAUNCHER, sys.executable, "-m", "s3mpu", "-v",
                               "put", str(path), "-", "--memory", "256M", "--no-complete", "--progress", "none",
                               "--json"], stdin=producer.stdout, env=_user_env(), capture_output=True, text=True,
                              timeout=600)
    finally:
        assert producer.stdout is not None
        producer.stdout.close()
        producer.wait(30)
    code, rss_kib = proc.stderr.rsplit("EXIT-RSS ", 1)[1].split()
    try:
        assert int(code) == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["size"] == GiB and doc["parts"] == 16 and doc["bytes_sent"] == GiB
        listed = client.list_parts(Bucket=bucket, Key=m.key, UploadId=m.upload_id, MaxParts=1000)["Parts"]
        assert sum(p["Size"] for p in listed) == GiB
    finally:
        client.abort_multipart_upload(Bucket=bucket, Key=m.key, UploadId=m.upload_id)
    assert "4 part(s) of 64.0 MiB in memory (--memory 256.0 MiB), 4 sent in parallel" in proc.stderr
    rss = int(rss_kib) / 1024
    print(f"peak RSS {rss:.1f} MiB")
    assert rss < 256 + 40, f"peak RSS {rss:.1f} MiB for a 1 GiB stream under --memory 256M"
