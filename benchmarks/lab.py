"""The benchmark's lab bench: a local S3 server, a test file, and a launcher that measures one client run."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ACCESS_KEY = "s3mpubenchaccess01"
SECRET_KEY = "s3mpubenchsecret0123456789abcdef"
MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def make_file(path: Path, size: int) -> None:
    """Pseudo-random, incompressible, distinct in every MiB (a counter in each block); fast to write."""
    block = os.urandom(MiB)
    with path.open("wb") as fh:
        left, i = size, 0
        while left > 0:
            n = min(left, MiB)
            fh.write((i.to_bytes(8, "little") + block[8:])[:n])
            left -= n
            i += 1


def proc_cpu(pid: int) -> float:
    """CPU seconds (user+sys) a running process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A local S3 server in a subprocess (rclone serve s3 on a directory, or moto)."""

    def __init__(self, kind: str, bindir: Path, workdir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.data = workdir / "server"
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        if kind == "rclone":
            self.data.mkdir()
            cmd = [str(bindir / "rclone"), "serve", "s3", "--config", "/dev/null", "--addr",
                   f"127.0.0.1:{self.port}", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", "--log-level", "ERROR",
                   *extra_args, str(self.data)]
        else:
            cmd = [str(bindir / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        stop_process(self.proc, 5)


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (rclone writes its --cpuprofile then), SIGKILL after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def admin_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name="us-east-1",
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


# -- measuring -------------------------------------------------------------------------------
#: The measuring launcher: a bare interpreter (-S -I, nothing imported) that spawns the client and
#: reports its wait4() rusage. Why not wait4 here: a child's ru_maxrss starts at the RSS of the
#: process it was spawned from (Linux records the old mm's high-water mark at exec), and this
#: script holds boto3 (~50 MiB), which would floor every client's "peak RSS". The launcher's own
#: floor is measured (``rss_floor``) and printed.
LAUNCHER = """
import os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
pid = os.posix_spawn(cmd[0], cmd, os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - t0
with open(out, "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {wall} {ru.ru_utime} {ru.ru_stime} {ru.ru_maxrss}")
"""


def measure(cmd: list[str], env: dict[str, str], workdir: Path, server: Server | None = None) -> dict[str, Any]:
    """Run ``cmd`` to the end; wall, CPU of its whole process tree and its peak RSS (see LAUNCHER)."""
    out_path, err_path, res_path = workdir / "stdout.txt", workdir / "stderr.txt", workdir / "rusage.txt"
    res_path.unlink(missing_ok=True)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        s0 = server.cpu() if server else 0.0
        subprocess.run([sys.executable, "-S", "-I", "-c", LAUNCHER, str(res_path), *cmd], env=env,
                       stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=workdir, check=True)
        s1 = server.cpu() if server else 0.0
    rc, wall, user, sys_, maxrss = res_path.read_text().split()
    return {"rc": int(rc), "wall": float(wall), "cpu": float(user) + float(sys_), "user": float(user),
            "sys": float(sys_), "rss_mib": int(maxrss) / 1024, "server_cpu": s1 - s0,
            "stdout": out_path.read_text(errors="replace"), "stderr": err_path.read_text(errors="replace")}
