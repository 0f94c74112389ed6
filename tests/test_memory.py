"""``s3mpu put`` stays lean: peak RSS bounded whatever the file and part size; boto3 never loaded.

A real ``s3mpu put`` subprocess (no credentials in its environment) sends a 200 MiB file to
``rclone serve s3``; its peak RSS comes from ``wait4`` (the kernel's ru_maxrss). Parts are
streamed from the file (hashing through one small buffer per worker, the body by sendfile),
so 64 MiB parts must not cost more memory than 8 MiB ones. No timing is asserted.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from s3mpu import manifest as manifests
from s3mpu.admin.mint import MintRequest, mint

MiB = 1 << 20
#: issue 14's target for put (an interpreter with urllib3 and click is ~30 MiB); each worker adds
#: one hashing buffer (transfer.CHUNK), so it holds at 16 workers too.
RSS_LIMIT_MIB = 40


def _mint(server: Any, tmp_path: Path, size: int, part_size: int | None, name: str) -> tuple[Any, Path, Any]:
    client = server.client()
    bucket = server.bucket("mem")
    m = mint(client, MintRequest(bucket=bucket, key=f"{name}.bin", size=size, part_size=part_size),
             endpoint=server.endpoint, region=server.region)
    path = tmp_path / f"{name}.json"
    manifests.dump(m, str(path))
    return m, path, client


#: Spawns the command from a bare interpreter and prints its wait4() rusage. Why: a child's
#: ru_maxrss starts at the RSS of the process it was spawned from (Linux keeps the old mm's
#: high-water mark at exec), and pytest with boto3 and moto loaded would hide the real figure.
LAUNCHER = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ,
                     file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
_, status, ru = os.wait4(pid, 0)
sys.stdout.write(f"{os.waitstatus_to_exitcode(status)} {ru.ru_maxrss}")
"""


def _run(args: list[str], env: dict[str, str]) -> tuple[int, float, str]:
    """Exit code, peak RSS in MiB (ru_maxrss of the command and its children), stderr (stdout is dropped)."""
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", LAUNCHER, *args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=True)
    code, maxrss = proc.stdout.split()
    return int(code), int(maxrss) / 1024, proc.stderr


def _user_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("S3MPU_RELAY_SECRET", None)
    return env


@pytest.mark.parametrize("part_size,jobs", [(None, 8), (64 * MiB, 8), (None, 16)],
                         ids=["default-parts", "64MiB-parts", "16-jobs"])
def test_put_peak_rss_is_bounded(rclone_server: Any, tmp_path: Path, make_data: Any, part_size: int | None,
                                 jobs: int) -> None:
    size = 200 * MiB
    data = make_data(size, name="big.bin", seed=7)
    m, path, client = _mint(rclone_server, tmp_path, size, part_size, f"mem-{part_size or 'auto'}-{jobs}")
    code, rss, err = _run([sys.executable, "-m", "s3mpu", "-q", "put", str(path), str(data), "--progress", "none",
                           "--no-complete", "--jobs", str(jobs)], _user_env())
    assert code == 0, err
    try:
        listed = client.list_parts(Bucket=m.bucket, Key=m.key, UploadId=m.upload_id, MaxParts=1000)["Parts"]
        assert sum(p["Size"] for p in listed) == size and len(listed) == len(m.parts)
    finally:
        client.abort_multipart_upload(Bucket=m.bucket, Key=m.key, UploadId=m.upload_id)
    assert rss <= RSS_LIMIT_MIB, f"peak RSS {rss:.1f} MiB for a 200 MiB put (parts of {m.part_size // MiB} MiB, {jobs} jobs)"


PROBE = """
import atexit, sys
HEAVY = ("boto3", "botocore", "rich", "flask")
def report():
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
    sys.stderr.write("HEAVY-MODULES:" + ",".join(loaded) + "\\n")
atexit.register(report)
from s3mpu.cli import main
sys.argv = ["s3mpu", *sys.argv[1:]]
main()
"""


def test_put_path_never_imports_boto3(rclone_server: Any, tmp_path: Path, make_data: Any) -> None:
    """The user side has no credentials: boto3/botocore (0.3 s, ~25 MiB) must stay out of put."""
    size = 6 * MiB
    data = make_data(size, name="small.bin", seed=3)
    m, path, client = _mint(rclone_server, tmp_path, size, 5 * MiB, "noboto")
    code, _rss, err = _run([sys.executable, "-c", PROBE, "put", str(path), str(data), "--progress", "none",
                            "--no-complete"], _user_env())
    client.abort_multipart_upload(Bucket=m.bucket, Key=m.key, UploadId=m.upload_id)
    assert code == 0, err
    line = next(x for x in err.splitlines() if x.startswith("HEAVY-MODULES:"))
    assert line == "HEAVY-MODULES:", line


def test_importing_the_upload_library_does_not_import_boto3() -> None:
    code = ("import sys, s3mpu.user.upload, s3mpu.user.transfer, s3mpu.user.httpclient, s3mpu.cli.cmd_user; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', 'rich', 'flask'}); "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_launcher_floor_is_small() -> None:
    """The measurement itself must not inflate the figure: a trivial command reports a few MiB."""
    code, rss, _ = _run(["/bin/true"], dict(os.environ))
    assert code == 0 and rss < 16
