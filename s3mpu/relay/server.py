"""Running the relay under waitress: in a thread (tests, ``s3mpu demo``) or in the foreground.

waitress is a production WSGI server (thread pool, request buffering, no dev-server warnings)
that is pure Python, so the relay runs the same on every platform. In the foreground,
SIGTERM and SIGINT stop accepting new connections and let requests in flight finish
(graceful shutdown, as systemd and container runtimes expect).

Limits against connection exhaustion (all in :class:`RelayConfig`): at most
``connection_limit`` open connections; a connection idle for ``channel_timeout`` is closed;
and, beyond waitress, a client that has not sent a whole request within ``request_timeout``
of starting it is cut off (so slow clients trickling header lines cannot hold connections).
A body declared larger than ``max_body`` is refused as soon as its headers arrive, before any
of it is read or spooled. Errors waitress answers itself are JSON like the app's.
"""
from __future__ import annotations

import json
import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from s3mpu.config import Settings
from s3mpu.relay.config import RelayConfig

log = logging.getLogger("s3mpu.relay")
access_log = logging.getLogger("s3mpu.relay.access")


@dataclass
class RelayHandle:
    """A running relay: ``url`` to talk to it, ``stop()`` to shut it down."""

    url: str
    host: str
    port: int
    config: RelayConfig
    _stopping: threading.Event = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    ops: Any = field(default=None, repr=False)  # s3mpu.relay.ops.Ops: events, metrics, readiness, tokens file

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish (up to ``timeout``), close everything."""
        self._stopping.set()
        self._thread.join(timeout + 2)

    def __enter__(self) -> RelayHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _make_config(settings: Settings | RelayConfig, app_options: dict[str, Any]) -> RelayConfig:
    if isinstance(settings, RelayConfig):
        if app_options:
            raise TypeError("pass options either in RelayConfig or as keywords, not both")
        return settings
    return RelayConfig(settings=settings, **app_options)


_WAITRESS_CODES = {400: "bad_request", 413: "payload_too_large", 431: "request_header_fields_too_large",
                   500: "internal_error"}


def _channel_class(request_timeout: int) -> type:
    """waitress's channel with JSON error answers and a clock on the request being received."""
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):  # type: ignore[misc]
        def execute(self) -> None:
            err = self.request.error
            code = int(getattr(err, "code", 400))
            text = str(getattr(err, "body", "") or getattr(err, "reason", "bad request"))
            message = "request body exceeds the relay's limit" if code == 413 else text
            rid = uuid.uuid4().hex
            error = _WAITRESS_CODES.get(code, "bad_request")
            body = (json.dumps({"error": error, "message": message, "request_id": rid},
                               separators=(",", ":")) + "\n").encode()
            self.status = f"{code} {getattr(err, 'reason', 'Bad Request')}"
            self.response_headers.extend([("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                                          ("X-Request-Id", rid)])
            access_log.info(json.dumps({"rid": rid, "remote": self.channel.addr[0] if self.channel.addr else "-",
                                        "status": code, "error": error, "by": "waitress"}, separators=(",", ":")))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class RelayChannel(HTTPChannel):  # type: ignore[misc]
        error_task_class = JsonErrorTask
        request_started = 0.0

        def received(self, data: bytes) -> bool:
            if data and self.request is None:
                self.request_started = time.time()
            return bool(super().received(data))

    RelayChannel.request_timeout = request_timeout
    return RelayChannel


def _maintenance(server: Any, now: float) -> None:
    """waitress's idle-channel sweep, plus: close a channel whose request is still incomplete after
    ``request_timeout`` (waitress alone keeps a client that sends a byte now and then forever)."""
    type(server).maintenance(server, now)
    for channel in list(server.active_channels.values()):
        started = getattr(channel, "request_started", 0.0)
        if channel.request is not None and not channel.requests and started and \
                now - started > channel.request_timeout:
            channel.will_close = True


def waitress_limits(config: RelayConfig) -> dict[str, Any]:
    """The waitress adjustments that enforce the relay's limits."""
    return {"connection_limit": config.connection_limit, "channel_timeout": config.channel_timeout,
            "cleanup_interval": 1, "max_request_body_size": config.max_body + 1,  # waitress refuses >= this
            "max_request_header_size": 64 * 1024, "asyncore_use_poll": True}


def _create_server(config: RelayConfig, host: str, port: int, threads: int, **waitress_options: Any) -> Any:
    """A waitress server for the app with the relay's limits (see the module docstring)."""
    import types

    from waitress.server import BaseWSGIServer, create_server

    from s3mpu.relay.app import create_app

    config.validate()
    app = create_app(config)
    options = {**waitress_limits(config), **waitress_options}
    server = create_server(app, host=host, port=port, threads=threads, ident="s3mpu-relay",
                           asyncore_loop_timeout=0.2, clear_untrusted_proxy_headers=True, **options)
    channel = _channel_class(config.request_timeout)
    for s in [server, *getattr(server, "map", {}).values()]:
        if isinstance(s, BaseWSGIServer):
            s.channel_class = channel
            s.maintenance = types.MethodType(_maintenance, s)
    server.s3mpu_ops = app.extensions["s3mpu.relay.ops"]
    return server


def _run(server: Any, stopping: threading.Event, timeout: float, stop_delay: float = 0.0) -> None:
    """waitress's event loop until ``stopping``; then a graceful drain, all in this one thread.

    Everything touching waitress's sockets happens in the loop's own thread (closing them from
    another thread races with ``select``). With ``stop_delay``, the relay first keeps serving
    that long while ``/readyz`` answers 503, so a load balancer's probe takes it out of rotation
    before it stops listening (what a Kubernetes preStop sleep does).
    """
    from waitress.wasyncore import loop

    while not stopping.is_set():
        loop(timeout=0.2, map=server._map, count=1)  # noqa: SLF001 - waitress has no public stepping API
    ops = getattr(server, "s3mpu_ops", None)
    if ops is not None:
        ops.stopping()  # /readyz says 503 first
    until = time.monotonic() + stop_delay
    while time.monotonic() < until:  # still listening and serving: only readiness has changed
        loop(timeout=0.1, map=server._map, count=1)  # noqa: SLF001
    _drain(server, timeout)
    if ops is not None:
        ops.close(min(timeout, 5.0))  # webhooks still queued are logged as undelivered


def _drain(server: Any, timeout: float) -> None:
    from waitress.channel import HTTPChannel
    from waitress.wasyncore import loop

    try:
        server.close()  # stop listening: new connections are refused from here on
    except OSError:
        pass
    deadline = time.monotonic() + timeout
    dispatcher = server.task_dispatcher
    while time.monotonic() < deadline:
        busy = dispatcher.active_count or dispatcher.queue or any(
            isinstance(ch, HTTPChannel) and (ch.requests or ch.total_outbufs_len) for ch in list(server._map.values()))
        if not busy:
            break
        loop(timeout=0.05, map=server._map, count=1)  # noqa: SLF001
    dispatcher.shutdown(cancel_pending=True, timeout=1)
    for channel in list(server._map.values()):  # noqa: SLF001 - waitress has no public "close all"
        try:
            channel.handle_close()
        except Exception:  # noqa: BLE001
            pass


def _url(host: str, port: int, scheme: str = "http") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def start_relay(settings: Settings | RelayConfig, *, host: str = "127.0.0.1", port: int = 0, threads: int = 8,
                waitress_options: dict[str, Any] | None = None, **app_options: Any) -> RelayHandle:
    """An in-process relay on a real socket, served by waitress in a daemon thread."""
    config = _make_config(settings, app_options)
    server = _create_server(config, host, port, threads, **(waitress_options or {}))
    real_port = int(server.effective_port)
    config.listen_url = config.listen_url or _url(host, real_port)
    stopping = threading.Event()
    thread = threading.Thread(target=_run, args=(server, stopping, 5.0), name=f"s3mpu-relay-{real_port}",
                              daemon=True)
    thread.start()
    return RelayHandle(_url(host, real_port), host, real_port, config, stopping, thread, server.s3mpu_ops)


def serve(settings: Settings | RelayConfig, *, host: str = "127.0.0.1", port: int = 8080, threads: int = 8,
          shutdown_timeout: float = 30.0, ready: Any = None, waitress_options: dict[str, Any] | None = None,
          metrics_listen: tuple[str, int] | None = None, stop_delay: float = 0.0, **app_options: Any) -> None:
    """Serve in the foreground until SIGTERM/SIGINT, then shut down gracefully; SIGHUP re-reads the tokens file.

    ``ready(url)`` is called once the socket listens (the CLI prints the URL there).
    ``metrics_listen``: serve /metrics on that (host, port) instead of on the relay's own port.
    ``stop_delay``: seconds to keep serving, not ready, after SIGTERM (see :func:`_run`).
    """
    config = _make_config(settings, app_options)
    server = _create_server(config, host, port, threads, **(waitress_options or {}))
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("received %s: %sfinishing requests in flight, then stopping", signal.Signals(signum).name,
                     f"not ready for {stop_delay:g} s, " if stop_delay else "")

    ops = server.s3mpu_ops

    def on_hup(_signum: int, _frame: Any) -> None:
        log.info("received SIGHUP: re-reading the tokens file")
        ops.reload_tokens()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    if hasattr(signal, "SIGHUP"):
        old[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
    metrics_server = None
    try:
        if metrics_listen is not None and ops.metrics is not None:
            from prometheus_client import start_http_server

            metrics_server, _ = start_http_server(metrics_listen[1], addr=metrics_listen[0],
                                                  registry=ops.metrics.registry)
        url = _url(host, int(server.effective_port))
        config.listen_url = config.listen_url or url
        if ready is not None:
            ready(url)  # the caller announces it (once)
        else:
            log.info("relay listening on %s (%d threads)", url, threads)
        _run(server, stopping, shutdown_timeout, stop_delay)
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        for s, h in old.items():
            signal.signal(s, h)
        log.info("relay stopped")
