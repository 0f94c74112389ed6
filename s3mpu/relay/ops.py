"""Wiring the relay's service features into the app: events, audit, metrics, webhooks, tokens, readiness.

:func:`build` makes one :class:`Ops` per app from ``config.service`` (a
:class:`~s3mpu.relay.options.ServiceOptions`); the app calls :meth:`Ops.begin` and
:meth:`Ops.finish` around each request, :meth:`Ops.refused` for each refusal, and
:meth:`Ops.routes` adds ``GET /readyz`` and ``GET /metrics``. Everything else reaches the
features through :class:`~s3mpu.relay.events.Events` (``service.events``), the one hook for
"an upload was minted, completed, aborted or refreshed".
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from s3mpu.relay.events import Events, begin_request, refusal_reason

log = logging.getLogger("s3mpu.relay")


@dataclass
class Ops:
    events: Events
    metrics: Any = None  # s3mpu.relay.metrics.RelayMetrics
    webhooks: Any = None  # s3mpu.relay.webhooks.WebhookSender
    tokens: Any = None  # s3mpu.relay.tokensfile.TokensFile
    readiness: Any = None  # s3mpu.relay.readiness.Readiness
    metrics_route: bool = True  # False: /metrics is served on --metrics-listen instead

    def begin(self, rid: str, endpoint: str, remote: str | None) -> None:
        begin_request(rid=rid, endpoint=endpoint, remote=remote)
        if self.tokens is not None:
            self.tokens.check()

    def finish(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.request(endpoint, method, status, seconds)

    def refused(self, status: int, code: str, message: str) -> None:
        if status < 500:
            self.events.refused(reason=refusal_reason(status, code, message), status=status, error=code)

    def reload_tokens(self) -> None:
        """SIGHUP: re-read the tokens file now."""
        if self.tokens is not None:
            self.tokens.check(force=True)

    def stopping(self) -> None:
        """A graceful stop began: /readyz answers 503 from now on."""
        if self.readiness is not None:
            self.readiness.stopping = True

    def close(self, timeout: float = 5.0) -> None:
        self.stopping()
        self.events.close(timeout)

    def routes(self, app: Any, json_response: Any) -> None:
        from flask import Response

        @app.get("/readyz")
        def readyz() -> Response:
            status, body = self.readiness.check()
            return json_response(status, body)  # type: ignore[no-any-return]

        if self.metrics is not None and self.metrics_route:
            @app.get("/metrics")
            def metrics() -> Response:
                data, ctype = self.metrics.exposition()
                return Response(data, status=200, content_type=ctype)


def build(config: Any) -> Ops:
    """The Ops for ``config`` (starts the webhook workers when webhooks are configured)."""
    opts = config.service
    events = opts.events if opts.events is not None else Events()
    opts.events = events
    ops = Ops(events, metrics_route=opts.metrics_route)
    if opts.metrics:
        from s3mpu.relay.metrics import RelayMetrics

        ops.metrics = RelayMetrics()
        events.subscribe(ops.metrics.on_event)
    observer = ops.metrics.s3_call if ops.metrics is not None else None
    from s3mpu.relay import s3watch

    opts.client_hooks.append(lambda client: s3watch.instrument(client, observer))
    if config._client is not None:  # noqa: SLF001 - already built (the CLI checks credentials first)
        s3watch.instrument(config._client, observer)  # noqa: SLF001
    if opts.audit:
        from s3mpu.relay.audit import audit_listener

        events.subscribe(audit_listener)
    if opts.webhooks:
        from s3mpu.relay.webhooks import WebhookSender

        if opts.webhook_secret is None:
            from s3mpu.errors import ConfigError

            raise ConfigError("--webhook needs a secret", "Set S3MPU_WEBHOOK_SECRET or --webhook-secret-file.")
        metrics = ops.metrics
        ops.webhooks = WebhookSender(opts.webhooks, opts.webhook_secret, timeout=opts.webhook_timeout,
                                     max_age=opts.webhook_max_age, max_queue=opts.webhook_queue,
                                     backoff=opts.webhook_backoff, max_backoff=opts.webhook_max_backoff,
                                     workers=opts.webhook_workers, clock=opts.clock,
                                     on_outcome=metrics.webhook if metrics is not None else None)
        events.subscribe(ops.webhooks.listener, ops.webhooks.close)
    if opts.tokens_file:
        from s3mpu.relay.tokensfile import TokensFile

        metrics = ops.metrics

        def on_state(ok: bool, count: int, failed: bool) -> None:
            if metrics is not None:
                metrics.tokens_file_ok.set(1 if ok else 0)
                metrics.api_tokens.set(count)
                if failed:
                    metrics.tokens_reload_errors.inc()

        ops.tokens = TokensFile(opts.tokens_file, config, interval=opts.tokens_interval, monotonic=opts.monotonic,
                                on_state=on_state)
    from s3mpu.relay.readiness import Readiness

    tokens = ops.tokens
    ops.readiness = Readiness(config, ttl=opts.ready_ttl, monotonic=opts.monotonic,
                              extra=(lambda: {"tokens": tokens.status()}) if tokens is not None else None)
    return ops

