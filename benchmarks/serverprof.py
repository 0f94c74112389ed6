#!/usr/bin/env python3
"""Where the S3 server's CPU goes for each client: one upload each, against a fresh profiled server.

Run by hand, after (or instead of) ``run.py``::

    python3 benchmarks/serverprof.py                   # 1 GiB; s3mpu, s3mpu-upload, aws, s5cmd
    python3 benchmarks/serverprof.py --tools s3mpu,aws --json

Why: on the benchmark's 2 cores the server shares the CPU with the client, so server work a
client causes is wall time that client pays. ``run.py`` shows how much; this shows what for.
Each client gets its own ``rclone serve s3 --cpuprofile`` (so one profile holds one upload and
nothing else), the object is checked by its size on the server's disk (a HEAD would itself
cost the server a hash, see below), and the profile is read with ``pprofread``. Samples are
grouped by the work they do; the MD5 groups are also given in "passes" over the file, taking
the part-ETag hash (which every client causes exactly once per byte) as one pass.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import run
from lab import make_file
from pprofread import Sample, read_profile

#: Work groups, in table order. MD5 samples are told apart by who called the hasher.
GROUPS = ["part ETag", "Content-MD5", "write hash", "read hash", "syscalls", "other"]
GROUP_HELP = {
    "part ETag": "MD5 of each part's body for its ETag (gofakes3 UploadPart)",
    "Content-MD5": "a second MD5 of the part to check the Content-MD5 header (gofakes3 hashingReader)",
    "write hash": "the local backend's hash of the object while streaming it to disk (not kept for HEAD)",
    "read hash": "the whole object's MD5 computed on its first HEAD/GET/listing (the ETag)",
    "syscalls": "socket reads, file writes",
    "other": "everything else (HTTP, XML, signature checks, GC)",
}


def classify(sample: Sample) -> str:
    top = sample.stack[0] if sample.stack else ""
    if top.startswith("crypto/md5."):
        frames = "\n".join(sample.stack)
        if "hashingReader" in frames:
            return "Content-MD5"
        if "MultiHasher" in frames:
            return "write hash"
        if "UploadPart" in frames:
            return "part ETag"
        return "read hash"
    if "syscall" in top.lower():
        return "syscalls"
    return "other"


def profile_one(args: argparse.Namespace, tool: str, data: Path) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="s3mpu-srvprof-", dir=args.dir))
    prof = workdir / "server.pprof"
    bench = None
    try:
        bench = run.Bench(args, workdir, server_args=("--cpuprofile", str(prof)))
        bench.file = data
        if tool == "s3mpu":
            bench.start_relay()
        result = bench.run(tool, 0, verify=False)
        stored = bench.server.data / run.BUCKET / f"{tool}-0.bin"
        if tool != "s3mpu-upload" and stored.stat().st_size != args.size:
            raise RuntimeError(f"{tool} stored {stored.stat().st_size} bytes, expected {args.size}")
        bench.stop()  # rclone writes the profile as it exits
        bench = None
        by_group: Counter[str] = Counter()
        for s in read_profile(prof):
            by_group[classify(s)] += s.cpu_ns
        seconds = {g: by_group[g] / 1e9 for g in GROUPS}
        one_pass = seconds["part ETag"] or float("nan")
        md5 = sum(seconds[g] for g in ("part ETag", "Content-MD5", "write hash", "read hash"))
        return {"tool": tool, "wall": result["wall"], "client_cpu": result["cpu"],
                "server_cpu": sum(seconds.values()), "groups": seconds, "md5_passes": md5 / one_pass}
    finally:
        if bench is not None:
            bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(rows: list[dict[str, object]], size: int) -> None:
    print(f"\nServer CPU seconds by work, one {size / run.MiB:.0f} MiB upload per client, each against its own "
          "rclone serve s3 (from its --cpuprofile)\n")
    head = f"{'client':<12} {'wall s':>6} {'cli CPU':>7} {'srv CPU':>7} " + " ".join(f"{g:>11}" for g in GROUPS) \
        + f" {'MD5 passes':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        g = r["groups"]
        assert isinstance(g, dict)
        print(f"{r['tool']:<12} {r['wall']:>6.2f} {r['client_cpu']:>7.2f} {r['server_cpu']:>7.2f} "
              + " ".join(f"{g[x]:>11.2f}" for x in GROUPS) + f" {r['md5_passes']:>10.1f}")
    print()
    for g in GROUPS:
        print(f"  {g:<12} {GROUP_HELP[g]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--size", type=run.parse_size, default=run.GiB, help="file size (default 1G)")
    ap.add_argument("--tools", default="s3mpu,s3mpu-upload,aws,s5cmd",
                    help=f"comma-separated subset of {','.join(run.TOOLS + run.EXTRA_TOOLS)}")
    ap.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="where the file and the server's data live (default /dev/shm)")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout instead of the table")
    ap.add_argument("--venv", type=Path, default=run.DEFAULT_VENV, help="benchmark venv (default benchmarks/.venv)")
    args = ap.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - set(run.TOOLS + run.EXTRA_TOOLS)
    if unknown:
        ap.error(f"unknown tools: {', '.join(sorted(unknown))}")
    run.reexec_in_venv(args.venv, "rclone", False, argv, Path(__file__))
    # run.Bench reads these run.py options; the profile takes each client's own defaults
    args.server, args.jobs, args.part_size, args.complete, args.rounds = "rclone", None, None, "relay", 1

    data_dir = Path(tempfile.mkdtemp(prefix="s3mpu-srvprof-data-", dir=args.dir))
    try:
        data = data_dir / "data.bin"
        run.log(f"creating a {args.size / run.MiB:.0f} MiB file in {data_dir}")
        make_file(data, args.size)
        rows = []
        for tool in tools:
            rows.append(profile_one(args, tool, data))
            run.log(f"{tool}: server {rows[-1]['server_cpu']:.2f} s CPU")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.json:
        json.dump({"size": args.size, "groups": GROUP_HELP, "runs": rows}, sys.stdout, indent=1)
        print()
    else:
        print_table(rows, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
