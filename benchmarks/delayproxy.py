"""A delaying TCP proxy for the benchmarks: a link that adds latency to every response, and a clock on the first PUT.

Why a proxy and not ``tc netem``: netem needs root and would slow every process on this shared
machine; a proxy in the benchmark slows only the clients pointed at it. It listens on 127.0.0.1
and forwards bytes unchanged (so presigned URLs minted for the proxy's endpoint stay valid: SigV4
signs the Host header, which the client sets from the URL it was given). Bytes from the server
are forwarded ``delay`` seconds after they arrived, in order, and without limiting bandwidth: each
connection has a queue of (arrival time, chunk) and a writer that sleeps until arrival + delay;
the reader never waits for the writer. Requests go through at once, so a request/response round
trip costs ``delay`` more, as over a link whose responses take that much longer.

The same proxy with ``delay=0`` is a plain pass-through that notes when the first byte of the
first ``PUT`` request reached it (``first_put``, on ``time.monotonic``: the clock ``lab.measure``'s
caller reads just before it starts a client), which is how ``smallfiles.py`` takes a put's time to
first byte from outside the client.

The proxy runs an asyncio loop in a daemon thread of the benchmark process: its CPU is the
benchmark's, not the client's nor the server's, and it shares this machine's cores with both.
"""
from __future__ import annotations

import asyncio
import threading
import time


class DelayProxy:
    """``127.0.0.1:port`` -> ``127.0.0.1:target_port``, responses delayed by ``delay`` seconds."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target = target_port
        self.delay = delay
        self.first_put: float | None = None
        self.connections = 0
        #: Each connection's task. asyncio keeps only a weak reference to a task, and a client-side
        #: StreamReaderProtocol only a weak one to its reader: once the client has hung up, a task
        #: still reading from the server would be garbage-collected pending ("Task was destroyed").
        self._tasks: set[asyncio.Task[None]] = set()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._main, args=(started,), daemon=True, name="delay-proxy")
        self._thread.start()
        if not started.wait(10) or self._server is None:
            raise RuntimeError("the delaying proxy did not start")
        self.port: int = self._server.sockets[0].getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def _main(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def boot() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
            started.set()

        self.loop.run_until_complete(boot())
        self.loop.run_forever()

    def reset(self) -> None:
        """Forget the first PUT (call before starting the client to be timed)."""
        self.first_put = None

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.connections += 1
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            cwriter.close()
            return
        up = asyncio.ensure_future(self._upstream(creader, swriter))
        down = asyncio.ensure_future(self._downstream(sreader, cwriter))
        await asyncio.gather(up, down, return_exceptions=True)
        for w in (swriter, cwriter):
            w.close()

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Client -> server, at once. A request starts a read (the client waits for each response
        before its next request on a connection), so ``startswith`` sees every request line."""
        try:
            while data := await reader.read(1 << 16):
                if self.first_put is None and data.startswith(b"PUT "):
                    self.first_put = time.monotonic()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, ConnectionError):
            writer.close()

    async def _downstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Server -> client, each chunk ``delay`` after it arrived, in order, reading never paused."""
        if self.delay <= 0:
            try:
                while data := await reader.read(1 << 16):
                    writer.write(data)
                    await writer.drain()
            except (OSError, ConnectionError):
                pass
            writer.close()
            return
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await queue.get()
                wait = due - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    break
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while data := await reader.read(1 << 16):
                queue.put_nowait((self.loop.time() + self.delay, data))
        except (OSError, ConnectionError):
            pass
        queue.put_nowait((self.loop.time() + self.delay, b""))  # the server's close, delayed like its bytes
        try:
            await sender
        except (OSError, ConnectionError):
            pass
        writer.close()

    def close(self) -> None:
        def stop() -> None:
            if self._server is not None:
                self._server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self._thread.join(5)
