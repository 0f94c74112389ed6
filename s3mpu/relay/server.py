"""Running the relay under waitress: in a thread (tests, ``s3mpu demo``) or in the foreground.

waitress is a production WSGI server (thread pool, request buffering, no dev-server warnings)
that is pure Python, so the relay runs the same on every platform. In the foreground,
SIGTERM and SIGINT stop accepting new connections and let requests in flight finish
(graceful shutdown, as systemd and container runtimes expect).
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from s3mpu.config import Settings
from s3mpu.relay.config import RelayConfig

log = logging.getLogger("s3mpu.relay")


@dataclass
class RelayHandle:
    """A running relay: ``url`` to talk to it, ``stop()`` to shut it down."""

    url: str
    host: str
    port: int
    config: RelayConfig
    _stopping: threading.Event = field(repr=False)
    _thread: threading.Thread = field(repr=False)

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


def _create_server(config: RelayConfig, host: str, port: int, threads: int, **waitress_options: Any) -> Any:
    """waitress's own body limit sits far above the app's, so an oversized body normally gets the
    app's JSON 413 (waitress spools bodies over 512 KiB to a temporary file, not RAM); only a body
    declared beyond 64 x the limit is cut off by waitress itself (plain-text 413)."""
    from waitress.server import create_server

    from s3mpu.relay.app import create_app

    app = create_app(config)
    return create_server(app, host=host, port=port, threads=threads, ident="s3mpu-relay",
                         max_request_body_size=64 * config.max_body + (1 << 20), asyncore_loop_timeout=0.2,
                         clear_untrusted_proxy_headers=True, **waitress_options)


def _run(server: Any, stopping: threading.Event, timeout: float) -> None:
    """waitress's event loop until ``stopping``; then a graceful drain, all in this one thread.

    Everything touching waitress's sockets happens in the loop's own thread (closing them from
    another thread races with ``select``).
    """
    from waitress.wasyncore import loop

    while not stopping.is_set():
        loop(timeout=0.2, map=server._map, count=1)  # noqa: SLF001 - waitress has no public stepping API
    _drain(server, timeout)


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
    stopping = threading.Event()
    thread = threading.Thread(target=_run, args=(server, stopping, 5.0), name=f"s3mpu-relay-{real_port}",
                              daemon=True)
    thread.start()
    return RelayHandle(_url(host, real_port), host, real_port, config, stopping, thread)


def serve(settings: Settings | RelayConfig, *, host: str = "127.0.0.1", port: int = 8080, threads: int = 8,
          shutdown_timeout: float = 30.0, ready: Any = None, waitress_options: dict[str, Any] | None = None,
          **app_options: Any) -> None:
    """Serve in the foreground until SIGTERM/SIGINT, then shut down gracefully.

    ``ready(url)`` is called once the socket listens (the CLI prints the URL there).
    """
    config = _make_config(settings, app_options)
    server = _create_server(config, host, port, threads, **(waitress_options or {}))
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("received %s: finishing requests in flight, then stopping", signal.Signals(signum).name)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        url = _url(host, int(server.effective_port))
        log.info("relay listening on %s (%d threads)", url, threads)
        if ready is not None:
            ready(url)
        _run(server, stopping, shutdown_timeout)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        log.info("relay stopped")
