"""Settings of the relay as a long-running service (metrics, audit, webhooks, live tokens, readiness).

A plain dataclass with no heavy imports, so :mod:`s3mpu.relay.config` (imported by every CLI
start) can hold one without loading prometheus_client or urllib3. The parts that act on these
settings live in :mod:`s3mpu.relay.ops` and the modules it wires together.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_WEBHOOK_TIMEOUT = 10.0
DEFAULT_WEBHOOK_MAX_AGE = 3600.0  # retry a failed delivery for up to an hour (as the issue and SPEC §4 say)
DEFAULT_WEBHOOK_QUEUE = 10000  # deliveries pending at most (~600 bytes each: benchmarks/relay_latency.py)
DEFAULT_WEBHOOK_BACKOFF = 2.0  # first retry after about this many seconds, doubling, with jitter
DEFAULT_WEBHOOK_MAX_BACKOFF = 600.0
DEFAULT_READY_TTL = 5.0  # /readyz asks S3 at most once per this many seconds


@dataclass
class ServiceOptions:
    """What ``s3mpu relay`` adds to the request handling: all optional, all injectable by tests."""

    metrics: bool = True  # count requests, S3 calls, uploads and refusals (prometheus_client)
    metrics_route: bool = True  # serve GET /metrics on the app itself (False with --metrics-listen)
    audit: bool = True  # one JSON line per mint/complete/abort/refresh/refusal on logger s3mpu.relay.audit
    webhooks: tuple[str, ...] = ()  # URLs that receive upload.minted/completed/aborted
    webhook_secret: bytes | None = None  # the decoded whsec_ secret (s3mpu.relay.webhooks.parse_secret)
    webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    webhook_max_age: float = DEFAULT_WEBHOOK_MAX_AGE
    webhook_queue: int = DEFAULT_WEBHOOK_QUEUE
    webhook_backoff: float = DEFAULT_WEBHOOK_BACKOFF
    webhook_max_backoff: float = DEFAULT_WEBHOOK_MAX_BACKOFF
    webhook_workers: int = 4
    tokens_file: str | None = None  # re-read when it changes (at most once per tokens_interval, and on SIGHUP)
    tokens_interval: float = 1.0
    ready_ttl: float = DEFAULT_READY_TTL
    #: the notifier every "upload minted/completed/aborted" goes through (s3mpu.relay.events.Events);
    #: built by create_app when None. Other code paths call it through RelayService.events.
    events: Any = None
    #: called with the relay's S3 client when it is built (s3mpu.relay.ops adds s3mpu.relay.s3watch)
    client_hooks: list[Callable[[Any], None]] = field(default_factory=list)
    clock: Callable[[], float] = time.time  # webhook timestamps and retry schedule
    monotonic: Callable[[], float] = time.monotonic  # caches (readiness, tokens file)
