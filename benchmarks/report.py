"""The benchmark's numbers: medians, ratios to s3mpu, the issue's targets, and the printed table."""
from __future__ import annotations

import statistics
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
    base = out.get("s3mpu")
    for s in out.values():
        if base:
            s["wall_ratio"] = s["wall"] / base["wall"]
            s["cpu_ratio"] = s["cpu"] / base["cpu"]
            s["rss_ratio"] = s["rss_mib"] / base["rss_mib"]
    return out


def targets(summary: dict[str, dict[str, float]], mint10k: dict[str, Any] | None,
            help_: dict[str, Any] | None) -> list[tuple[str, str, bool]]:
    rows: list[tuple[str, str, bool]] = []
    me = summary.get("s3mpu")
    if me:
        peers = [summary[t]["wall"] for t in ("s5cmd", "aws") if t in summary]
        if peers:
            best = min(peers)
            rows.append(("put wall <= 1.0x best of s5cmd/aws", f"{me['wall'] / best:.2f}x", me["wall"] <= best))
        if "s5cmd" in summary:
            ratio = me["cpu"] / summary["s5cmd"]["cpu"]
            rows.append(("put CPU <= 0.85x s5cmd", f"{ratio:.2f}x", ratio <= 0.85))
        rows.append(("put peak RSS <= 64 MiB", f"{me['rss_mib']:.0f} MiB", me["rss_mib"] <= 64))
    if mint10k:
        rows.append(("mint 10,000 parts <= 1.5 s", f"{mint10k['wall']:.2f} s", mint10k["wall"] <= 1.5))
    if help_:
        rows.append(("s3mpu --help <= 0.3 s", f"{help_['wall']:.3f} s", help_["wall"] <= 0.3))
    return rows


def print_table(result: dict[str, Any], order: list[str]) -> None:
    summary = result["summary"]
    size = result["size"]
    load = result.get("load_average") or [0.0, 0.0]
    print(f"\n{size / MiB:.0f} MiB to {result['server']} on {result['platform']}, medians of {result['rounds']} "
          f"rounds (ratio = peer / s3mpu: > 1 means s3mpu is better)")
    print(f"load average before/after: {load[0]:.2f}/{load[1]:.2f} (other work on the machine skews wall times;"
          f" CPU and RSS are robust); RSS floor of the measurement: {result.get('rss_floor_mib', 0):.1f} MiB\n")
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
    if result.get("mint_10k"):
        m = result["mint_10k"]
        print(f"\ns3mpu mint, 10,000 parts (whole process): {m['wall']:.2f} s wall, {m['cpu']:.2f} s CPU, "
              f"{m['rss_mib']:.0f} MiB")
    if result.get("help"):
        h = result["help"]
        print(f"s3mpu --help: {h['wall']:.3f} s (bare python startup {h['python_startup']:.3f} s)")
    if result.get("targets"):
        print("\ntargets:")
        for name, value, ok in result["targets"]:
            print(f"  {'ok  ' if ok else 'MISS'} {name}: {value}")
        if any(not ok and name.startswith("put wall") for name, _, ok in result["targets"]):
            print("  (where the server's CPU goes per client: python3 benchmarks/serverprof.py; see benchmarks/README.md)")
