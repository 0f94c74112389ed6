"""What the relay's service features cost: added latency per request, and the webhook queue's memory.

1. Latency: two local relays (waitress, in-process) over moto, one with metrics and audit off,
   one with them on; a client on a keep-alive connection sends N requests to each, in
   alternating blocks, and takes p50/p99. Two request kinds:
   ``GET /healthz`` (the per-request hooks alone: request metrics) and a refused
   ``POST /v1/status`` (401: per-request hooks plus an audit line and a refusal counter, no S3).
   Log lines go to a file handler on /dev/null, so formatting and writing them is measured.
2. Memory: a WebhookSender with no workers filled to its bound with typical events
   (tracemalloc, so only what the queue holds is counted).

    python benchmarks/relay_latency.py [-n 3000] [--queue 10000]
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Client:
    """One keep-alive connection sending one kind of request."""

    def __init__(self, url: str, kind: str) -> None:
        import urllib3

        self.url, self.kind = url, kind
        self.http = urllib3.PoolManager(maxsize=1, retries=False)
        self.body = json.dumps({"token": "v1.AAAAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB"}).encode()

    def one(self) -> float:
        t0 = time.perf_counter()
        if self.kind == "healthz":
            r = self.http.request("GET", self.url + "/healthz")
            assert r.status == 200
        else:
            r = self.http.request("POST", self.url + "/v1/status", body=self.body,
                                  headers={"Content-Type": "application/json"})
            assert r.status == 401, r.data
        return (time.perf_counter() - t0) * 1000


def latency(n: int, block: int = 250) -> dict[str, dict[str, float]]:
    """Both relays run side by side and are measured in alternating blocks, so drift in the
    machine's load (2 shared cores) falls on both alike."""
    from relay_fixtures import relay_settings
    from s3mpu.relay.options import ServiceOptions
    from s3mpu.relay.server import start_relay
    from servers import start_moto

    s3 = start_moto()
    relays = {"off": start_relay(relay_settings(s3), service=ServiceOptions(metrics=False, audit=False), threads=4),
              "on": start_relay(relay_settings(s3), service=ServiceOptions(metrics=True, audit=True), threads=4)}
    out: dict[str, dict[str, float]] = {}
    try:
        for kind in ("healthz", "status401"):
            clients = {label: Client(r.url, kind) for label, r in relays.items()}
            times: dict[str, list[float]] = {label: [] for label in relays}
            for c in clients.values():
                for _ in range(200):  # warm-up
                    c.one()
            while len(times["on"]) < n:
                for label, c in clients.items():
                    times[label].extend(c.one() for _ in range(min(block, n - len(times[label]))))
            for label, t in times.items():
                out[f"{kind} {label}"] = {"p50": percentile(t, 50), "p99": percentile(t, 99), "mean": statistics.fmean(t)}
    finally:
        for r in relays.values():
            r.stop()
        s3.stop()
    return out


def hook_cost(n: int = 20000) -> dict[str, float]:
    """The hooks' own CPU time per request, without HTTP noise (microseconds)."""
    from s3mpu.relay.audit import audit_listener
    from s3mpu.relay.events import Events, begin_request
    from s3mpu.relay.metrics import RelayMetrics

    metrics = RelayMetrics()
    events = Events([metrics.on_event, audit_listener])
    out = {}
    t0 = time.perf_counter()
    for _ in range(n):
        begin_request(rid="r", endpoint="/healthz", remote="127.0.0.1")
        metrics.request("/healthz", "GET", 200, 0.001)
    out["request metrics"] = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        begin_request(rid="r", endpoint="/v1/status", remote="127.0.0.1")
        events.refused(reason="token", status=401, error="unauthorized")
    out["refusal: audit line + counter"] = (time.perf_counter() - t0) / n * 1e6
    return out


def queue_memory(bound: int) -> dict[str, float]:
    from s3mpu.relay.events import Event
    from s3mpu.relay.webhooks import WebhookSender, parse_secret

    key = parse_secret("whsec_" + "A" * 43 + "=")
    sender = WebhookSender(("http://127.0.0.1:9/hook",), key, max_queue=bound, workers=0)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(bound + 10):  # the last 10 overflow (dropped, logged)
        sender.listener(Event("completed", "alice", "media-uploads", f"incoming/2026/12/04/camera-{i:06d}/clip.mov",
                              f"2~{i:032d}abcdefabcdefabcdef", 5_368_709_120 + i, f"{i:032x}-640"))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert sender.depth == bound
    sender.close(0)
    return {"bound": bound, "bytes": used, "per_delivery": used / bound}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000, help="requests per measurement (after 200 warm-up)")
    parser.add_argument("--queue", type=int, default=10000, help="webhook queue bound to fill")
    args = parser.parse_args()
    logging.getLogger("s3mpu.relay.webhooks").disabled = True
    handler = logging.FileHandler("/dev/null")  # log lines are formatted and written, as in production
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    lg = logging.getLogger("s3mpu")
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    lg.propagate = False
    mem = queue_memory(args.queue)
    print(f"webhook queue at its bound of {mem['bound']}: {mem['bytes'] / 1e6:.1f} MB "
          f"({mem['per_delivery']:.0f} bytes per queued delivery)")
    for name, us in hook_cost().items():
        print(f"hook cost, {name}: {us:.1f} us per request (in-process, no HTTP)")
    results = latency(args.n)
    print(f"latency over {args.n} sequential requests per row (ms, client-measured, keep-alive):")
    for name, r in results.items():
        print(f"  {name:16s} p50 {r['p50']:.3f}  p99 {r['p99']:.3f}  mean {r['mean']:.3f}")
    for kind in ("healthz", "status401"):
        on, off = results[f"{kind} on"], results[f"{kind} off"]
        print(f"  {kind}: metrics+audit add {on['p50'] - off['p50']:+.3f} ms at p50, {on['p99'] - off['p99']:+.3f} ms at p99")


if __name__ == "__main__":
    main()
