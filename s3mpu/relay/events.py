"""What happened to an upload, told once to everyone who cares: audit log, metrics, webhooks.

Every code path that mints, completes, aborts or refreshes an upload, or refuses a request,
calls one method of :class:`Events` (``service.events.completed(...)``); listeners subscribe
with :meth:`Events.subscribe`. Keeping the fan-out here means a new endpoint (bundles, the seed
API) gets audit lines, counters and webhooks by making one call, and no listener can fail or
delay a request: each is called in turn and an exception in one is logged, never raised.

Who and what a request concerns is gathered while it runs (the app starts a context per request,
the service notes the manifest's upload or the API token's name once authenticated), so a refusal
deep in the service still names who was refused and for which upload.
"""
from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

log = logging.getLogger("s3mpu.relay")

MINTED, COMPLETED, ABORTED, REFRESHED, REFUSED = "minted", "completed", "aborted", "refreshed", "refused"
#: refusal reasons (a bounded set: they are metric labels)
REASONS = ("token", "policy", "quota", "size", "expired", "input", "not_found", "conflict", "mismatch")


@dataclass(frozen=True)
class Event:
    """One audited fact. ``who``: the API token's name, ``manifest``, ``seed`` or ``unknown``."""

    action: str
    who: str = "unknown"
    bucket: str | None = None
    key: str | None = None
    upload_id: str | None = None
    size: int | None = None
    etag: str | None = None
    outcome: str = "ok"  # ok | already_completed (a retried complete: no second webhook) | refused
    reason: str | None = None  # refusals: one of REASONS
    status: int | None = None  # refusals: the HTTP status answered
    error: str | None = None  # refusals: the error code answered
    endpoint: str | None = None
    rid: str | None = None
    remote: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("s3mpu_relay_request", default=None)


def begin_request(**fields: Any) -> None:
    """Start a request's context (rid, endpoint, remote); the app calls it first thing."""
    _context.set(dict(fields))


def note(**fields: Any) -> None:
    """Record who/what the current request concerns (no-op outside a request)."""
    ctx = _context.get()
    if ctx is not None:
        ctx.update({k: v for k, v in fields.items() if v is not None})


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


Listener = Callable[[Event], None]


class Events:
    """The notifier: ``minted``/``completed``/``aborted``/``refreshed``/``refused`` build an :class:`Event`
    (filled in from the request's context) and hand it to every listener."""

    def __init__(self, listeners: list[Listener] | None = None) -> None:
        self.listeners: list[Listener] = list(listeners or [])
        self.closers: list[Callable[[float], None]] = []

    def subscribe(self, listener: Listener, close: Callable[[float], None] | None = None) -> None:
        self.listeners.append(listener)
        if close is not None:
            self.closers.append(close)

    def emit(self, event: Event) -> Event:
        ctx = current()
        fill = {k: ctx[k] for k in ("who", "bucket", "key", "upload_id", "endpoint", "rid", "remote")
                if k in ctx and getattr(event, k) in (None, "unknown")}
        if fill:
            event = replace(event, **fill)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as exc:  # noqa: BLE001 - a listener never fails or delays the request
                log.error("event listener %s failed on %s: %s: %s", getattr(listener, "__name__", listener),
                          event.action, type(exc).__name__, exc)
        return event

    def minted(self, *, bucket: str, key: str, upload_id: str, size: int | None, who: str = "unknown",
               **extra: Any) -> Event:
        return self.emit(Event(MINTED, who, bucket, key, upload_id, size, extra=extra))

    def completed(self, *, bucket: str, key: str, upload_id: str, size: int | None, etag: str | None,
                  already: bool = False, who: str = "unknown", **extra: Any) -> Event:
        """``already``: S3 said the upload was completed before (a retry, maybe on another relay)."""
        return self.emit(Event(COMPLETED, who, bucket, key, upload_id, size, etag,
                               outcome="already_completed" if already else "ok", extra=extra))

    def aborted(self, *, bucket: str, key: str, upload_id: str, who: str = "unknown", **extra: Any) -> Event:
        return self.emit(Event(ABORTED, who, bucket, key, upload_id, extra=extra))

    def refreshed(self, *, bucket: str, key: str, upload_id: str, who: str = "unknown", **extra: Any) -> Event:
        return self.emit(Event(REFRESHED, who, bucket, key, upload_id, extra=extra))

    def refused(self, *, reason: str, status: int, error: str, who: str = "unknown", **extra: Any) -> Event:
        return self.emit(Event(REFUSED, who, outcome="refused", reason=reason, status=status, error=error,
                               extra=extra))

    def close(self, timeout: float = 5.0) -> None:
        """Flush what can be flushed (webhook queue) within ``timeout``; called when the relay stops."""
        for close in self.closers:
            try:
                close(timeout)
            except Exception as exc:  # noqa: BLE001
                log.error("closing an event listener failed: %s", exc)


def refusal_reason(status: int, code: str, message: str = "") -> str:
    """The metric/audit reason of a refused request (see :data:`REASONS`)."""
    if status == 401:
        return "token"
    if status == 429:
        return "quota"
    if status == 413 or (status == 403 and "at most" in message and "bytes" in message):
        return "size"
    if code == "expired":
        return "expired"
    if status == 403:
        return "policy"
    return {404: "not_found", 409: "conflict", 422: "mismatch"}.get(status, "input")
