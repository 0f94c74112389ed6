"""Signed webhooks (Standard Webhooks) from a bounded in-memory queue, retried with backoff.

Signing, as https://www.standardwebhooks.com says: headers ``webhook-id``, ``webhook-timestamp``
(Unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, the key
being the base64 part of a ``whsec_...`` secret. These few lines are checked in the tests against
the spec's published vector and the independent ``standardwebhooks`` package.

Delivery never touches the request that caused the event: :meth:`WebhookSender.send` only puts
one job per URL on a heap, and a few worker threads post them. A failure (non-2xx, a redirect,
timeout, refused connection) is retried under the same ``webhook-id`` (receivers deduplicate on
it) after ``backoff x 2^n`` seconds with jitter, for up to ``max_age``. The id is derived from the
event (type, bucket, key, upload id), so two relays that both see the same completion send the
same id. The queue is bounded: beyond ``max_queue`` jobs an event is logged as undelivered and
counted, as is whatever is still queued when the relay stops. The queue lives in memory: for
delivery that survives a crash, use the store's own event notifications (docs/relay.md).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from s3mpu.errors import ConfigError
from s3mpu.relay.events import ABORTED, COMPLETED, MINTED, Event

log = logging.getLogger("s3mpu.relay.webhooks")
MIN_SECRET_BYTES = 24  # the spec's lower bound (192 bits); whsec_ secrets are 24 to 64 bytes
EVENT_TYPES = {MINTED: "upload.minted", COMPLETED: "upload.completed", ABORTED: "upload.aborted"}


def parse_secret(text: str, where: str = "the webhook secret") -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ConfigError (exit 78) when it is not one."""
    text = text.strip()
    if not text.startswith("whsec_"):
        raise ConfigError(f"{where} must look like whsec_<base64> (Standard Webhooks)",
                          "Generate one with: echo whsec_$(openssl rand -base64 32)")
    try:
        encoded = text[len("whsec_"):]
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)  # padding optional
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where} is not valid base64 after whsec_",
                          "Generate one with: echo whsec_$(openssl rand -base64 32)") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(f"{where} is too short ({len(key)} bytes; at least {MIN_SECRET_BYTES})",
                          "Generate one with: echo whsec_$(openssl rand -base64 32)")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def message_id(event_type: str, bucket: str, key: str, upload_id: str) -> str:
    """The same id for the same event wherever it is seen (receivers deduplicate on it)."""
    digest = hashlib.sha256("\n".join((event_type, bucket, key, upload_id)).encode("utf-8", "surrogatepass"))
    return "msg_" + base64.b32encode(digest.digest()[:20]).decode().lower()


def shown_url(url: str) -> str:
    """A URL for logs and --check-config: no user info, no query (either may hold a credential)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname or ''}{':' + str(p.port) if p.port else ''}{p.path}"


def check_url(url: str) -> str:
    p = urlsplit(url)
    if p.scheme not in ("http", "https") or not p.hostname:
        raise ConfigError(f"--webhook {shown_url(url)!r} is not an http(s) URL")
    return url


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    url: str = field(compare=False)
    msg_id: str = field(compare=False)
    body: bytes = field(compare=False)
    first: float = field(compare=False)
    attempt: int = field(default=0, compare=False)


Outcome = Callable[[str, int], None]  # (outcome, queue depth)


class WebhookSender:
    """The queue and its workers; :meth:`listener` is what :class:`~s3mpu.relay.events.Events` calls."""

    def __init__(self, urls: tuple[str, ...], key: bytes, *, timeout: float = 10.0, max_age: float = 3600.0,
                 max_queue: int = 10000, backoff: float = 2.0, max_backoff: float = 600.0, workers: int = 4,
                 clock: Callable[[], float] = time.time, jitter: Callable[[], float] = random.random,
                 on_outcome: Outcome | None = None) -> None:
        import urllib3

        self.urls, self.key = tuple(check_url(u) for u in urls), key
        self.timeout, self.max_age, self.max_queue = timeout, max_age, max_queue
        self.backoff, self.max_backoff = backoff, max_backoff
        self.clock, self.jitter, self.on_outcome = clock, jitter, on_outcome
        self.http = urllib3.PoolManager(num_pools=max(4, len(self.urls)), maxsize=workers, retries=False,
                                        timeout=urllib3.Timeout(connect=timeout, read=timeout))
        self._heap: list[_Job] = []
        self._in_flight = 0
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._abandoned = False
        self._threads = [threading.Thread(target=self._work, name=f"s3mpu-webhook-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    @property
    def depth(self) -> int:
        return len(self._heap) + self._in_flight

    def _count(self, outcome: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(outcome, self.depth)

    def listener(self, event: Event) -> None:
        if event.action not in EVENT_TYPES or (event.action == COMPLETED and event.outcome != "ok"):
            return  # a retried complete: the first one already fired (same webhook-id anyway)
        self.send(EVENT_TYPES[event.action], event)

    def send(self, event_type: str, event: Event) -> None:
        """Queue one delivery per URL; never blocks, never raises."""
        data = {k: v for k, v in (("bucket", event.bucket), ("key", event.key), ("upload_id", event.upload_id),
                                  ("size", event.size), ("etag", event.etag), ("who", event.who)) if v is not None}
        now = self.clock()
        msg_id = message_id(event_type, event.bucket or "", event.key or "", event.upload_id or "")
        body = json.dumps({"type": event_type, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                           "data": data}, separators=(",", ":")).encode()
        with self._cond:
            for url in self.urls:
                if self._closed or self.depth >= self.max_queue:
                    log.warning("webhook undelivered (%s): %s %s to %s", "relay stopping" if self._closed else
                                f"queue full at {self.max_queue}", event_type, msg_id, shown_url(url))
                    self._count("dropped")
                    continue
                heapq.heappush(self._heap, _Job(now, next(self._seq), url, msg_id, body, now))
            self._cond.notify_all()
        self._count("")

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0].due > self.clock()):
                    wait = self._heap[0].due - self.clock() if self._heap else None
                    self._cond.wait(min(wait, 1.0) if wait is not None else None)
                if self._closed:
                    return
                job = heapq.heappop(self._heap)
                self._in_flight += 1
            try:
                outcome = self._deliver(job)
            except BaseException:
                with self._cond:
                    self._in_flight -= 1
                raise
            if self._abandoned:  # close() counted it as undelivered already
                with self._cond:
                    self._in_flight -= 1
                return
            self._settle(job, outcome)  # back on the heap (or given up) before the depth is reported
            self._count(outcome)

    def _deliver(self, job: _Job) -> str:
        ts = int(self.clock())
        headers = {"content-type": "application/json", "user-agent": "s3mpu-relay", "webhook-id": job.msg_id,
                   "webhook-timestamp": str(ts), "webhook-signature": sign(self.key, job.msg_id, ts, job.body)}
        try:
            r = self.http.request("POST", job.url, body=job.body, headers=headers, redirect=False,
                                  preload_content=False)
            try:
                r.read(64 * 1024, decode_content=False)  # enough to reuse the connection; bounded
            finally:
                r.release_conn()
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is retried, never raised
            name = type(exc).__name__
            return "timeout" if "Timeout" in name or "timed out" in str(exc) else "connection_error"
        if 200 <= r.status < 300:
            return "delivered"
        return "redirect" if 300 <= r.status < 400 else "http_error"

    def _settle(self, job: _Job, outcome: str) -> None:
        """A delivery's end. A failed job goes back on the heap in the same locked step in which it
        leaves the in-flight count, so the queue's depth never dips in between (a dip let one more
        event past a full queue: a test caught it)."""
        due = None
        if outcome != "delivered":
            job.attempt += 1
            delay = min(self.max_backoff, self.backoff * 2 ** (job.attempt - 1)) * (0.5 + self.jitter())
            due = self.clock() + delay
            if due - job.first > self.max_age:
                log.warning("webhook undelivered (gave up after %d attempts, last: %s): %s to %s", job.attempt,
                            outcome, job.msg_id, shown_url(job.url))
                due = None
                self._count("expired")
            else:
                log.info("webhook %s to %s failed (%s); retry %d in %.1fs", job.msg_id, shown_url(job.url), outcome,
                         job.attempt, delay)
        with self._cond:
            self._in_flight -= 1
            if due is None:
                return
            if self._closed:
                self._undelivered(job)
                return
            job.due, job.seq = due, next(self._seq)
            heapq.heappush(self._heap, job)
            self._cond.notify_all()

    def _undelivered(self, job: _Job) -> None:
        log.warning("webhook undelivered (relay stopping): %s to %s", job.msg_id, shown_url(job.url))
        self._count("undelivered")

    def close(self, timeout: float = 5.0) -> None:
        """Let deliveries in flight finish (up to ``timeout``); log and count what is still queued."""
        with self._cond:
            self._closed = True
            left, self._heap = self._heap, []
            self._cond.notify_all()
        for job in sorted(left):
            self._undelivered(job)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            stuck = self._in_flight
        if stuck:  # their receivers have not answered yet: the outcome will never be known here
            self._abandoned = True
            log.warning("webhook undelivered (relay stopping): %d delivery(ies) still waiting for their receiver", stuck)
            for _ in range(stuck):
                self._count("undelivered")
            return  # their threads (daemons) still use the pool
        self.http.clear()

    def stats(self) -> dict[str, Any]:
        return {"urls": len(self.urls), "queued": self.depth, "max_queue": self.max_queue}


def load_secret(secret_file: str | None, env_value: str | None) -> bytes:
    """The webhook key from ``--webhook-secret-file`` (first non-empty line) or ``S3MPU_WEBHOOK_SECRET``."""
    if secret_file:
        try:
            lines = [ln.strip() for ln in open(secret_file, encoding="utf-8").read().splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read webhook secret file {secret_file}: {exc}") from None
        if not lines:
            raise ConfigError(f"webhook secret file {secret_file} is empty",
                              "Put one whsec_ secret in it: echo whsec_$(openssl rand -base64 32)")
        return parse_secret(lines[0], f"the webhook secret in {secret_file}")
    if env_value:
        return parse_secret(env_value, "S3MPU_WEBHOOK_SECRET")
    raise ConfigError("--webhook needs a secret to sign with",
                      "Set S3MPU_WEBHOOK_SECRET or --webhook-secret-file (echo whsec_$(openssl rand -base64 32)).")
