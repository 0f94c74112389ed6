"""``s3mpu demo`` works with no account, no AWS variables and an empty HOME (clean_env)."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_subprocess_json() -> None:
    assert not any(k.startswith("AWS_ACCESS") for k in os.environ)
    r = subprocess.run([sys.executable, "-m", "s3mpu", "demo", "--size", "11M", "--part-size", "5M", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["verified"] is True and result["parts"] == 3 and result["size"] == 11 << 20
    assert result["etag"].endswith("-3")
    assert "X-Amz-Signature" not in r.stderr  # no request log with signatures


def test_demo_plain_output_no_tty() -> None:
    r = subprocess.run([sys.executable, "-m", "s3mpu", "demo", "--size", "1M"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "demo OK" in r.stdout and "SHA-256 verified" in r.stdout
    assert "\x1b[" not in r.stdout + r.stderr and "\r" not in r.stderr
