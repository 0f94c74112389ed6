"""``GET /readyz``: can this relay do its work with S3 right now?

A cheap call (HeadBucket on each configured bucket; ListBuckets when none are configured) with
the relay's credentials, cached for ``ttl`` seconds so probes from a load balancer cost S3
nothing, through its own client with short timeouts and one attempt (a probe must answer fast
even when S3 hangs). The answer names a *kind* of cause (``unreachable``, ``timeout``,
``credentials``, ``bucket``, ``s3_error``), never a bucket, key or endpoint: the full message
goes to the log, once per change. During a graceful stop it answers 503 first, so the load
balancer stops sending work while requests in flight finish.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("s3mpu.relay")
_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "403"}


def _cause(exc: Exception) -> str:
    name = type(exc).__name__
    if "Timeout" in name:
        return "timeout"
    if "Endpoint" in name or "Connection" in name or "Connect" in name:
        return "unreachable"
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    if code in _CREDENTIALS or code == "AccessDenied":
        return "credentials"
    if code in ("NoSuchBucket", "404"):
        return "bucket"
    return "s3_error"


class Readiness:
    """The cached readiness of one relay; ``stopping`` is set when a graceful stop begins."""

    def __init__(self, config: Any, ttl: float = 5.0, monotonic: Callable[[], float] = time.monotonic,
                 extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.config, self.ttl, self.monotonic, self.extra = config, ttl, monotonic, extra
        self.stopping = False
        self._lock = threading.Lock()
        self._at: float | None = None
        self._cause: str | None = None
        self._client: Any = None

    def _probe_client(self) -> Any:
        if self._client is None:
            if self.config.s3_client_factory is not None:
                self._client = self.config.s3()
            else:
                from s3mpu.config import s3_client

                self._client = s3_client(self.config.settings, 2, connect_timeout=2.0, read_timeout=3.0,
                                         max_attempts=1)
        return self._client

    def _probe(self) -> str | None:
        buckets = sorted({b for b in [self.config.seed_bucket, *(t.bucket for t in self.config.api_tokens)] if b})
        try:
            client = self._probe_client()
            if buckets:
                for bucket in buckets:
                    client.head_bucket(Bucket=bucket)
            else:
                try:
                    client.list_buckets()
                except Exception as exc:
                    if _cause(exc) != "credentials" or "AccessDenied" not in str(exc):
                        raise  # AccessDenied on ListBuckets: S3 answered and knows the key, only it may not list
        except Exception as exc:  # noqa: BLE001 - every failure is a reason to be unready
            cause = _cause(exc)
            if cause != self._cause:
                log.warning("not ready: S3 check failed (%s): %s: %s", cause, type(exc).__name__, str(exc)[:300])
            return cause
        if self._cause is not None:
            log.info("ready again: S3 answers")
        return None

    def check(self) -> tuple[int, dict[str, Any]]:
        """``(status, body)`` for /readyz."""
        detail = self.extra() if self.extra else {}
        if self.stopping:
            return 503, {"status": "stopping", **detail}
        with self._lock:
            now = self.monotonic()
            if self._at is None or now - self._at >= self.ttl:
                self._cause = self._probe()
                self._at = self.monotonic()
            cause = self._cause
        if cause is not None:
            return 503, {"status": "unready", "s3": cause, **detail}
        return 200, {"status": "ready", "s3": "ok", **detail}
