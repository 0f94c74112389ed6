"""Watching the relay's own S3 calls through botocore's event hooks (no wrapper around every call site).

Two uses: metrics (every call's operation, outcome and latency) and telling a fresh complete from
a retried one. ``complete_upload`` is idempotent: a retry, on this relay or another, finds the
upload gone and the object there, and answers the same success. Only a request during which
CompleteMultipartUpload itself succeeded completed the upload, so only that one fires the
``upload.completed`` webhook (the relay keeps no state, S3 is the record).
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

Observer = Callable[[str, str, float], None]  # (operation, outcome, seconds)
_local = threading.local()
_MARK = "_s3mpu_watched"


def outcome_of(status: int) -> str:
    return "ok" if status < 300 else "client_error" if status < 500 else "server_error"


def instrument(client: Any, observer: Observer | None = None) -> None:
    """Hook ``client`` once: record calls for :func:`recording`, and tell ``observer`` about each."""
    if getattr(client, _MARK, False):
        return
    events = client.meta.events

    def done(op: str, outcome: str, context: dict[str, Any]) -> None:
        t0 = context.get("s3mpu_t0")
        seconds = time.perf_counter() - t0 if t0 is not None else 0.0
        calls = getattr(_local, "calls", None)
        if calls is not None:
            calls.append((op, outcome))
        if observer is not None:
            observer(op, outcome, seconds)

    def before(model: Any = None, context: Any = None, **_kw: Any) -> None:
        if isinstance(context, dict):
            context["s3mpu_t0"] = time.perf_counter()

    def after(http_response: Any = None, model: Any = None, context: Any = None, **_kw: Any) -> None:
        status = int(getattr(http_response, "status_code", 0) or 0)
        done(getattr(model, "name", "unknown"), outcome_of(status), context if isinstance(context, dict) else {})

    def error(event_name: str = "", context: Any = None, exception: Any = None, **_kw: Any) -> None:
        outcome = "timeout" if "Timeout" in type(exception).__name__ else "network_error"
        done(event_name.rsplit(".", 1)[-1] or "unknown", outcome, context if isinstance(context, dict) else {})

    events.register("before-call.s3", before, unique_id="s3mpu-watch-before")
    events.register("after-call.s3", after, unique_id="s3mpu-watch-after")
    events.register("after-call-error.s3", error, unique_id="s3mpu-watch-error")
    try:
        setattr(client, _MARK, True)
    except AttributeError:
        pass


def instrumented(client: Any) -> bool:
    return bool(getattr(client, _MARK, False))


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[str, str]]]:
    """The ``(operation, outcome)`` of every S3 call this thread makes inside the block."""
    saved = getattr(_local, "calls", None)
    calls: list[tuple[str, str]] = []
    _local.calls = calls
    try:
        yield calls
    finally:
        _local.calls = saved


def report_completed(events: Any, client: Any, calls: list[tuple[str, str]], bucket: str, key: str, upload_id: str,
                     result: Any, who: str) -> None:
    """Tell ``events`` a complete succeeded: fresh when CompleteMultipartUpload itself succeeded inside
    ``recording()``, else a retry S3 had already completed (here or on another relay): no second webhook."""
    fresh = ("CompleteMultipartUpload", "ok") in calls or not instrumented(client)
    events.completed(bucket=bucket, key=key, upload_id=upload_id, size=result.get("size"), etag=result.get("etag"),
                     already=not fresh, who=who)
