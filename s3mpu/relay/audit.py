"""The audit trail: one JSON line per mint, complete, abort, refresh and refusal.

Lines go to the logger ``s3mpu.relay.audit`` (under ``s3mpu``, so wherever the relay's log goes:
stderr -> journald under systemd; docs/relay.md shows a file with logrotate), separate from the
access log so they can be routed or kept longer. A line names who (the API token's *name*,
``manifest``, ``seed``) and what (bucket, key, upload id, size, ETag, outcome), never a token,
secret or URL: events carry none, and ``json.dumps`` escapes every control character in keys
and names, so request data cannot forge a line.
"""
from __future__ import annotations

import json
import logging
import time

from s3mpu.relay.events import Event

audit_log = logging.getLogger("s3mpu.relay.audit")
_FIELDS = ("who", "bucket", "key", "upload_id", "size", "etag", "outcome", "reason", "status", "error", "endpoint",
           "rid", "remote")


def audit_line(event: Event, now: float | None = None) -> str:
    line: dict[str, object] = {"audit": event.action,
                               "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))}
    for name in _FIELDS:
        value = getattr(event, name)
        if value is not None:
            line[name] = value[:1100] if isinstance(value, str) else value
    for name, value in event.extra.items():
        if name not in line and isinstance(value, (str, int, float, bool)):
            line[name] = value
    return json.dumps(line, separators=(",", ":"))


def audit_listener(event: Event) -> None:
    audit_log.info(audit_line(event))
