"""README "Uploading without s3mpu": the bash + jq + curl script, taken from the README as it is,
uploads through a manifest to rclone (strict: SigV4, signed Content-Length and Content-MD5) and
completes through the relay."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from relay_fixtures import RELAY_SECRET
from s3mpu.cli import cli

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


def readme_script() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- tested: tests/e2e/test_readme_curl.py[^>]*-->\n```bash\n(.*?)```", text, re.S)
    assert m, "README.md lost its tested 'Uploading without s3mpu' block"
    return m.group(1)


def mint(server: Any, relay_url: str, out: Path, *args: Any) -> dict[str, Any]:
    env = {**server.env(), "S3MPU_RELAY_SECRET": RELAY_SECRET}
    r = CliRunner().invoke(cli, [str(a) for a in ["mint", *args, "--relay", relay_url, "-o", out]], env=env,
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["exact", "plan-bound", "max-size"])
def test_readme_curl_loop_uploads_and_completes(rclone_server: Any, relay_for: Any, tmp_path: Path,
                                                make_data: Any, kind: str) -> None:
    for tool in ("bash", "jq", "curl", "dd"):
        assert shutil.which(tool), f"{tool} is needed by the README's script (and installed in CI)"
    relay = relay_for(rclone_server)
    bucket = rclone_server.bucket()
    data = make_data(2 * 5 * MiB + 12345, name="raw.mov", seed=61)
    m_path = tmp_path / "raw.json"
    if kind == "plan-bound":
        plan = tmp_path / "raw.plan.json"
        r = CliRunner().invoke(cli, ["plan", str(data), "--part-size", "5M", "-o", str(plan)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        m = mint(rclone_server, relay.url, m_path, f"s3://{bucket}/raw.mov", "--plan", plan)
        assert all(p["md5"] for p in m["parts"]) and len(m["parts"]) == 3
    elif kind == "max-size":  # 5 parts of 5 MiB signed for full parts; the file fills 3, the last one short
        m = mint(rclone_server, relay.url, m_path, f"s3://{bucket}/raw.mov", "--max-size", "25M", "--part-size", "5M")
        assert m["size_is_max"] and len(m["parts"]) == 5 and m["parts"][2]["size"] == 5 * MiB
    else:
        m = mint(rclone_server, relay.url, m_path, f"s3://{bucket}/raw.mov", "--size", data.stat().st_size,
                 "--part-size", "5M")
        assert len(m["parts"]) == 3
    script = tmp_path / "upload.sh"
    script.write_text(readme_script())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    r = subprocess.run(["bash", str(script)], cwd=tmp_path, env={**env, "M": str(m_path), "FILE": str(data)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    reply = json.loads(r.stdout)
    assert reply["size"] == data.stat().st_size and reply["key"] == "raw.mov"
    got = rclone_server.client().get_object(Bucket=bucket, Key="raw.mov")["Body"].read()
    assert got == data.read_bytes()
