"""Output for scripts and cron: no control sequences without a TTY, NO_COLOR honoured, --json
is one JSON document on stdout, and `info` never shows URL signatures unless --show-urls."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from s3mpu.manifest import load

#: any C0 control character except newline and tab, plus DEL and the C1 CSI
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")
COLOR_SGR = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])[0-9;]*m")
SECRET = "relay-secret-for-output-tests"


def env_for(server: Any | None = None, **extra: str) -> dict[str, str]:
    """A non-TTY environment that would *like* colour (TERM set, NO_COLOR unset)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(TERM="xterm-256color", COLUMNS="120")
    if server is not None:
        env.update(server.env())
    env.update(extra)
    return env


def s3mpu(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s3mpu", *args], capture_output=True, text=True, env=env,
                          timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture
def minted(moto_server: Any, tmp_path: Path) -> tuple[Path, str]:
    bucket = moto_server.bucket()
    out = tmp_path / "m.json"
    r = s3mpu(["mint", f"s3://{bucket}/dir/obj.bin", "--size", "12M", "--part-size", "5M",
               "--relay", "http://127.0.0.1:9/relay", "-o", str(out)], env_for(moto_server, S3MPU_RELAY_SECRET=SECRET))
    assert r.returncode == 0, r.stderr
    return out, bucket


def assert_clean(r: subprocess.CompletedProcess[str], what: str) -> None:
    for name, text in (("stdout", r.stdout), ("stderr", r.stderr)):
        bad = CONTROL.search(text)
        assert bad is None, f"{what}: control character {bad.group()!r} on {name}: {text[:300]!r}"


def test_non_tty_output_has_no_control_sequences(moto_server: Any, minted: tuple[Path, str], make_data: Any,
                                                  tmp_path: Path) -> None:
    manifest, bucket = minted
    data = make_data(6 * 1024 * 1024)
    env = env_for(moto_server)
    runs = {
        "plan": ["plan", str(data), "--part-size", "5M", "-o", str(tmp_path / "p.json")],
        "plan --json": ["plan", str(data), "--json", "-o", str(tmp_path / "p2.json")],
        "mint human": ["mint", f"s3://{bucket}/x", "--size", "1M", "-o", str(tmp_path / "m2.json")],
        "mint to stdout": ["mint", f"s3://{bucket}/y", "--size", "1M"],
        "info": ["info", str(manifest)],
        "info --json": ["info", str(manifest), "--json"],
        "listmp": ["listmp", f"s3://{bucket}"],
        "cleanup --dry-run": ["cleanup", f"s3://{bucket}", "--older-than", "0s", "--dry-run"],
        "error": ["info", str(tmp_path / "missing.json")],
        "usage error": ["mint", "--bogus"],
        "help": ["--help"],
    }
    plain = tmp_path / "norelay.json"  # a manifest without relay: status/abort use its presigned URLs
    assert s3mpu(["mint", f"s3://{bucket}/n", "--size", "6M", "--part-size", "5M", "-o", str(plain)], env).returncode == 0
    user = env_for()
    runs.update({
        "status": ["status", str(plain)],
        "status --json with file": ["status", str(plain), str(data), "--json"],
        "abort": ["abort", str(plain)],
    })
    for what, args in runs.items():
        r = s3mpu(args, user if what.startswith(("status", "abort")) else env)
        assert r.returncode in (0, 64, 66), (what, r.stderr)
        assert_clean(r, what)
        assert "\x1b" not in r.stdout + r.stderr
    assert s3mpu(runs["error"], env).returncode == 66


def test_json_is_one_document_on_stdout(moto_server: Any, minted: tuple[Path, str], tmp_path: Path) -> None:
    manifest, bucket = minted
    env = env_for(moto_server)
    for args in (["info", str(manifest), "--json"], ["listmp", f"s3://{bucket}", "--json"],
                 ["cleanup", f"s3://{bucket}", "--dry-run", "--json"],
                 ["mint", f"s3://{bucket}/z", "--size", "1M", "-o", str(tmp_path / "z.json"), "--json"]):
        r = s3mpu(args, env)
        assert r.returncode == 0, r.stderr
        assert isinstance(json.loads(r.stdout), dict)  # the whole of stdout is one document
        assert r.stderr == ""  # --json silences human chatter


def test_quiet_prints_nothing_but_errors(moto_server: Any, minted: tuple[Path, str], tmp_path: Path) -> None:
    manifest, bucket = minted
    env = env_for(moto_server)
    r = s3mpu(["-q", "cleanup", f"s3://{bucket}", "--dry-run"], env)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    r = s3mpu(["-q", "info", str(tmp_path / "missing.json")], env)
    assert r.returncode == 66 and r.stderr.startswith("error: manifest not found")


def _signatures(manifest: Path) -> list[str]:
    m = load(manifest)
    urls = [p.url for p in m.parts] + [m.list_parts_url or "", m.abort_url or ""]
    return [parse_qs(urlsplit(u).query)["X-Amz-Signature"][0] for u in urls if u]


def test_info_never_shows_signatures(moto_server: Any, minted: tuple[Path, str]) -> None:
    manifest, _ = minted
    sigs = _signatures(manifest)
    token = load(manifest).relay.token  # type: ignore[union-attr]
    assert len(sigs) == 5 and token
    token_mac = token.rsplit(".", 1)[1]
    env = env_for(moto_server)
    for args in (["info", str(manifest), "--json"], ["info", str(manifest)], ["-v", "info", str(manifest)]):
        r = s3mpu(args, env)
        assert r.returncode == 0, r.stderr
        for sig in sigs:
            assert sig not in r.stdout + r.stderr, args
        assert token_mac not in r.stdout + r.stderr, args
    data = json.loads(s3mpu(["info", str(manifest), "--json"], env).stdout)
    assert all("X-Amz-Signature=REDACTED" in p["url"] for p in data["parts"])
    assert data["relay"]["token"].endswith(".REDACTED") and data["parts"][0]["md5"] is None
    shown = s3mpu(["info", str(manifest), "--json", "--show-urls"], env)
    assert all(sig in shown.stdout for sig in sigs) and token_mac in shown.stdout


def test_no_color_on_a_terminal(moto_server: Any, minted: tuple[Path, str]) -> None:
    """On a real pseudo-terminal: NO_COLOR set means no colour escape, whatever TERM says."""
    import pty
    manifest, _ = minted
    for args in (["info", str(manifest)], ["info", str(Path(manifest).with_name("missing.json"))],
                 ["mint", "--bogus"]):
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "s3mpu", *args], stdin=slave, stdout=slave, stderr=slave,
                                env=env_for(moto_server, NO_COLOR="1"), close_fds=True)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(30)
        os.close(master)
        text = b"".join(chunks).decode("utf-8", "replace")
        assert text.strip(), args
        assert COLOR_SGR.search(text) is None, (args, text[:300])


def test_put_without_tty_prints_plain_lines(moto_server: Any, relay_for: Any, make_data: Any, tmp_path: Path) -> None:
    from relay_fixtures import RELAY_SECRET

    bucket = moto_server.bucket()
    data = make_data(11 * 1024 * 1024)
    out = tmp_path / "put.json"
    r = s3mpu(["mint", f"s3://{bucket}/put.bin", "--size", str(data.stat().st_size), "--part-size", "5M",
               "--relay", relay_for(moto_server).url, "-o", str(out)], env_for(moto_server, S3MPU_RELAY_SECRET=RELAY_SECRET))
    assert r.returncode == 0, r.stderr
    user = env_for()  # no credentials
    r = s3mpu(["put", str(out), str(data)], user)
    assert r.returncode == 0, r.stderr
    assert_clean(r, "put")
    assert "uploading" in r.stderr and "uploaded" in r.stdout  # plain progress lines, then the result
    out2 = tmp_path / "put2.json"
    r = s3mpu(["mint", f"s3://{bucket}/put2.bin", "--size", str(data.stat().st_size), "--part-size", "5M",
               "--relay", relay_for(moto_server).url, "-o", str(out2)], env_for(moto_server, S3MPU_RELAY_SECRET=RELAY_SECRET))
    assert r.returncode == 0, r.stderr
    js = s3mpu(["put", str(out2), str(data), "--json"], user)
    assert js.returncode == 0, js.stderr
    assert_clean(js, "put --json")
    assert js.stderr == ""
    result = json.loads(js.stdout)
    assert result["size"] == data.stat().st_size and result["completed"] is True
    assert {"key", "etag", "parts", "seconds", "mib_per_s"} <= set(result)
