"""Prometheus metrics for the relay, through ``prometheus_client`` (no hand-written exposition).

Each app gets its own registry (tests run many relays in one process). Under gunicorn with
several workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory (the library's
multiprocess mode): every worker then writes its values there and ``/metrics`` sums them all,
whichever worker answers (docs/relay.md). Labels are bounded and public: endpoint *rules*
(``/v1/complete``, never a raw path), S3 operation names, status codes, refusal reasons.
No token, secret, bucket, key name or URL is ever a label (key names are private and unbounded).
"""
from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from s3mpu.relay.events import COMPLETED, MINTED, ABORTED, REFUSED, Event

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RelayMetrics:
    """The relay's counters, histograms and gauges, and their exposition."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.requests = Counter("s3mpu_relay_requests", "HTTP requests answered, by endpoint rule and status",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("s3mpu_relay_request_duration_seconds", "Time to answer a request, by endpoint",
                                 ["endpoint"], buckets=_LATENCY, registry=r)
        self.s3_calls = Counter("s3mpu_relay_s3_calls", "S3 calls made by the relay, by operation and outcome",
                                ["operation", "outcome"], registry=r)
        self.s3_latency = Histogram("s3mpu_relay_s3_call_duration_seconds", "S3 call latency, by operation",
                                    ["operation"], buckets=_LATENCY, registry=r)
        self.minted = Counter("s3mpu_relay_uploads_minted", "Uploads created (/v1/mint, seed /presign)", registry=r)
        self.completed = Counter("s3mpu_relay_uploads_completed",
                                 "Uploads completed (a retried complete of a completed upload is not counted)",
                                 registry=r)
        self.completed_bytes = Counter("s3mpu_relay_completed_bytes", "Bytes in completed uploads", registry=r)
        self.aborted = Counter("s3mpu_relay_uploads_aborted", "Uploads aborted", registry=r)
        self.refusals = Counter("s3mpu_relay_refusals", "Requests refused, by reason", ["reason"], registry=r)
        self.webhook_deliveries = Counter("s3mpu_relay_webhook_deliveries",
                                          "Webhook delivery attempts and losses, by outcome", ["outcome"], registry=r)
        self.webhook_queue = Gauge("s3mpu_relay_webhook_queue_depth", "Webhook deliveries waiting or in flight",
                                   registry=r, multiprocess_mode="livesum")
        self.tokens_reload_errors = Counter("s3mpu_relay_tokens_reload_errors",
                                            "Times the tokens file changed but could not be used", registry=r)
        self.tokens_file_ok = Gauge("s3mpu_relay_tokens_file_ok",
                                    "1 when the tokens file in force is the one on disk, 0 when it fails to parse",
                                    registry=r, multiprocess_mode="livemin")
        self.api_tokens = Gauge("s3mpu_relay_api_tokens", "API tokens in force", registry=r,
                                multiprocess_mode="livemax")

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def s3_call(self, operation: str, outcome: str, seconds: float) -> None:
        self.s3_calls.labels(operation, outcome).inc()
        self.s3_latency.labels(operation).observe(seconds)

    def on_event(self, event: Event) -> None:
        if event.action == MINTED:
            self.minted.inc()
        elif event.action == COMPLETED and event.outcome == "ok":
            self.completed.inc()
            self.completed_bytes.inc(event.size or 0)
        elif event.action == ABORTED:
            self.aborted.inc()
        elif event.action == REFUSED:
            self.refusals.labels(event.reason or "input").inc()

    def webhook(self, outcome: str, depth: int | None = None) -> None:
        if outcome:
            self.webhook_deliveries.labels(outcome).inc()
        if depth is not None:
            self.webhook_queue.set(depth)

    def exposition(self) -> tuple[bytes, str]:
        """The text format, of this process or (multiprocess mode) of every worker together."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry: Any = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = self.registry
        return generate_latest(registry), CONTENT_TYPE_LATEST
