"""The benchmark's numbers: medians, ratios to s3mpu, the issue's targets, and the printed table."""
from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

MiB = 1 << 20
GiB = 1 << 30


def summarize(runs: dict[str, list[dict[str, Any]]], size: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for tool, rs in runs.items():
        if not rs:
            continue
        wall = statistics.median(r["wall"] for r in rs)
        cpu = statistics.median(r["cpu"] for r in rs)
        out[tool] = {"wall": wall, "mib_s": size / MiB / wall, "cpu": cpu, "cpu_per_gib": cpu / (size / GiB),
                     "rss_mib": statistics.median(r["rss_mib"] for r in rs),
                     "server_cpu": statistics.median(r["server_cpu"] for r in rs), "rounds": len(rs)}
        heads = [r["first_head"] for r in rs if "first_head" in r]
        if heads:  # the object's first HeadObject, timed right after the upload (rclone hashes the object)
            out[tool]["first_head"] = statistics.median(heads)
    base = out.get("s3mpu")
    for s in out.values():
        if base:
            s["wall_ratio"] = s["wall"] / base["wall"]
            s["cpu_ratio"] = s["cpu"] / base["cpu"]
            s["rss_ratio"] = s["rss_mib"] / base["rss_mib"]
    return out


def put_targets(summary: dict[str, dict[str, float]], size: int) -> list[tuple[str, str, bool]]:
    """Issue 14's targets for the uploads of one size, each with the measured value and whether it is met."""
    rows: list[tuple[str, str, bool]] = []
    me = summary.get("s3mpu")
    at = f" at {size / MiB:.0f} MiB"
    if me:
        for peer, limit in (("s5cmd", 1.0), ("aws", 1.1)):
            if peer in summary:
                ratio = me["wall"] / summary[peer]["wall"]
                rows.append((f"put wall <= {limit:.1f}x {peer}{at}", f"{ratio:.2f}x", ratio <= limit))
        if "s5cmd" in summary:
            ratio = me["cpu"] / summary["s5cmd"]["cpu"]
            rows.append((f"put CPU <= 0.75x s5cmd{at}", f"{ratio:.2f}x", ratio <= 0.75))
        rows.append((f"put peak RSS <= 40 MiB{at}", f"{me['rss_mib']:.0f} MiB", me["rss_mib"] <= 40))
    return rows


def extra_targets(mint10k: dict[str, Any] | None, help_: dict[str, Any] | None,
                  scale10k: dict[str, Any] | None = None) -> list[tuple[str, str, bool]]:
    """The targets measured once per run: mint of 10,000 parts, ``--help`` and the 10,000-part figures."""
    rows: list[tuple[str, str, bool]] = []
    if mint10k:
        rows.append(("mint 10,000 parts <= 0.6 s", f"{mint10k['wall']:.2f} s", mint10k["wall"] <= 0.6))
    if help_:
        rows.append(("s3mpu --help <= 0.3 s", f"{help_['wall']:.3f} s", help_["wall"] <= 0.3))
    if scale10k:
        rows += scale_targets(scale10k)
    return rows


SCALE_TARGETS = {"first_byte": 0.5, "status": 0.5, "complete": 5.0, "rss_mib": 64.0}


def scale_targets(res: dict[str, Any]) -> list[tuple[str, str, bool]]:
    rows = [("10k parts: put time to first byte <= 0.5 s", res["put_300"]["first_byte"], SCALE_TARGETS["first_byte"]),
            ("10k parts: status <= 0.5 s", res["status"]["wall"], SCALE_TARGETS["status"]),
            ("10k parts: relay complete <= 5 s", res["complete_10k"]["wall"], SCALE_TARGETS["complete"]),
            ("10k parts: put peak RSS <= 64 MiB", res["put_300"]["rss_mib"], SCALE_TARGETS["rss_mib"])]
    return [(name, f"{value:.3f}", value <= limit) for name, value, limit in rows]


def print_scale(res: dict[str, Any]) -> None:
    """The 10,000-part figures (``scale.py``; also printed by ``run.py``)."""
    print("\n10,000 parts of 5 MiB (a sparse 50,000 MiB file) on rclone serve s3, whole processes:\n")
    print(f"{'what':<44} {'wall s':>7} {'CPU s':>6} {'RSS MiB':>8}")
    print("-" * 68)
    rows = [("s3mpu mint (10,000 URLs)", res["mint"]), ("s3mpu info", res["info"]),
            ("s3mpu info --json", res["info_json"]), ("s3mpu put --parts 1-300 --no-complete", res["put_300"]),
            ("s3mpu status MANIFEST FILE", res["status"])]
    for name, r in rows:
        print(f"{name:<44} {r['wall']:>7.3f} {r['cpu']:>6.2f} {r['rss_mib']:>8.0f}")
    c = res["complete_10k"]
    print(f"\nmanifest {res['manifest_bytes'] / 1e6:.2f} MB; put time to first byte {res['put_300']['first_byte']:.3f} s;"
          f" status saw {res['status_parts_server']} parts on the server; relay /v1/complete of 10,000 parts "
          f"{c['wall']:.2f} s (request {c['request_bytes'] / 1e3:.0f} kB)")
    for k in ("complete_300_small", "complete_300_5mib"):
        if k in res:
            print(f"relay /v1/complete of 300 parts of {res[k]['part_size']} bytes: {res[k]['wall']:.3f} s")


def print_table(result: dict[str, Any], order: list[str]) -> None:
    """One table per file size, then the figures and targets measured once per run."""
    load = result.get("load_average") or [0.0, 0.0]
    sizes = " and ".join(f"{one['size'] / MiB:.0f} MiB" for one in result["sizes"])
    print(f"\n{sizes} to {result['server']} on {result['platform']}, medians of {result['rounds']} rounds "
          "(ratio = peer / s3mpu: > 1 means s3mpu is better)")
    print(f"load average before/after: {load[0]:.2f}/{load[1]:.2f} (other work on the machine skews wall times;"
          " RSS is robust, CPU less so: compare ratios within one run); "
          f"RSS floor of the measurement: {result.get('rss_floor_mib', 0):.1f} MiB")
    for one in result["sizes"]:
        print_size(one, order)
    if result.get("mint_10k"):
        m = result["mint_10k"]
        print(f"\ns3mpu mint, 10,000 parts (whole process): {m['wall']:.2f} s wall, {m['cpu']:.2f} s CPU, "
              f"{m['rss_mib']:.0f} MiB")
    if result.get("help"):
        h = result["help"]
        print(f"s3mpu --help: {h['wall']:.3f} s (bare python startup {h['python_startup']:.3f} s)")
    if result.get("scale_10k"):
        print_scale(result["scale_10k"])
    rows = [row for one in result["sizes"] for row in one["targets"]] + result.get("targets", [])
    if rows:
        print("\ntargets:")
        for name, value, ok in rows:
            print(f"  {'ok  ' if ok else 'MISS'} {name}: {value}")
        if any(not ok and name.startswith("put wall") for name, _, ok in rows):
            print("  (where the server's CPU goes per client: python3 benchmarks/serverprof.py; see benchmarks/README.md)")


def print_size(one: dict[str, Any], order: list[str]) -> None:
    """The table of one file size: a row per client, and what the relay's former HEAD would have cost."""
    summary = one["summary"]
    print(f"\n{one['size'] / MiB:.0f} MiB:\n")
    head = (f"{'client':<12} {'wall s':>7} {'MiB/s':>7} {'CPU s/GiB':>9} {'RSS MiB':>8} {'srv CPU s':>9} "
            f"{'wall x':>7} {'CPU x':>6} {'RSS x':>6}")
    print(head)
    print("-" * len(head))
    for tool in order:
        s = summary.get(tool)
        if not s:
            continue
        print(f"{tool:<12} {s['wall']:>7.2f} {s['mib_s']:>7.0f} {s['cpu_per_gib']:>9.2f} {s['rss_mib']:>8.0f} "
              f"{s['server_cpu']:>9.2f} {s.get('wall_ratio', float('nan')):>7.2f} "
              f"{s.get('cpu_ratio', float('nan')):>6.2f} {s.get('rss_ratio', float('nan')):>6.2f}")
    me = summary.get("s3mpu")
    if me and "first_head" in me:
        print(f"s3mpu put with the relay's former HeadObject after complete: {me['wall'] + me['first_head']:.2f} s "
              f"(without it: {me['wall']:.2f} s; the object's first HEAD took {me['first_head']:.2f} s)")
    floor = one.get("floor")
    if me and floor:
        least = floor["read_md5_cpu"] + floor["start_cpu"]
        peer = summary.get("s5cmd")
        vs = f" = {least / peer['cpu']:.2f}x s5cmd's CPU ({peer['cpu']:.2f} s)" if peer else ""
        print(f"least CPU any s3mpu put of this file can spend: {least:.2f} s{vs}: reading and MD5-hashing "
              f"the file {floor['read_md5_cpu']:.2f} s + interpreter and imports {floor['start_cpu']:.2f} s; "
              f"s3mpu put spent {me['cpu']:.2f} s")


def emit(result: dict[str, Any], as_json: bool, table: Callable[[dict[str, Any]], None]) -> int:
    """Print ``result`` as one JSON document or as ``table`` prints it; the exit status."""
    if as_json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        table(result)
    return 0


def run_rounds(tools: list[str], rounds: int, run_one: Callable[[str, int], dict[str, Any]],
               log: Callable[[str], None], what: str = "") -> dict[str, list[dict[str, Any]]]:
    """Run every tool ``rounds`` times, rotating who goes first each round (so no client always
    meets a warm or a cold server), and log each run's figures as it ends."""
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    for rnd in range(rounds):
        for tool in tools[rnd % len(tools):] + tools[:rnd % len(tools)]:
            r = run_one(tool, rnd)
            runs[tool].append(r)
            log(f"round {rnd + 1}/{rounds} {what}{tool:<7} {r['wall']:6.2f} s wall  {r['cpu']:5.2f} s CPU  "
                f"{r['rss_mib']:5.0f} MiB  server {r['server_cpu']:5.2f} s CPU")
    return runs
