"""The state of one ``put``: what the caller asked for (:class:`Options`), what the steps found
(:class:`Run`) and what is returned (:class:`UploadResult`).

Why a module of its own: the steps in :mod:`s3mpu.user.upload` hand one :class:`Run` to each
other, so a new check (a file-identity re-check, a repair) reads and sets fields here instead
of growing one long function's local variables.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from s3mpu.manifest import Manifest, Part
from s3mpu.units import MiB
from s3mpu.user.httpclient import HttpClient
from s3mpu.user.journal import Journal
from s3mpu.user.progress import ProgressSink
from s3mpu.user.resume import Preflight, next_commands
from s3mpu.user.sources import FileSource, StreamSource
from s3mpu.user.transfer import Outcome, PartTask, RetryPolicy


@dataclass
class UploadResult:
    """What ``put`` did; ``completed`` is False with ``--no-complete`` or a partial ``--parts`` run."""

    key: str
    bucket: str
    size: int
    etag: str | None
    parts: int
    seconds: float
    bytes_sent: int
    mib_per_s: float
    completed: bool
    parts_uploaded: int = 0
    parts_skipped: int = 0
    message: str = ""
    bytes_skipped: int = 0  # a stream's parts the server already held: read, hashed, not sent again

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "bucket": self.bucket, "size": self.size, "etag": self.etag, "parts": self.parts,
                "seconds": round(self.seconds, 3), "bytes_sent": self.bytes_sent,
                "mib_per_s": round(self.mib_per_s, 2), "completed": self.completed,
                "parts_uploaded": self.parts_uploaded, "parts_skipped": self.parts_skipped,
                "bytes_skipped": self.bytes_skipped}


@dataclass
class Options:
    """What the caller asked for; fixed for the whole run."""

    jobs: int
    retry: RetryPolicy
    rate: int | None
    subset: Sequence[int] | str | None
    complete: bool
    manifest_path: str | None
    state_dir: Path | None
    progress: ProgressSink
    warn: Callable[[str], None]
    info: Callable[[str], None]
    debug: Callable[[str], None] = lambda _s: None
    verify: bool = False  # re-read the file after the last part (put --verify)


@dataclass
class Run:
    """The state one put hands from step to step; each step reads what the earlier ones set."""

    m: Manifest
    source: FileSource | StreamSource
    opts: Options
    http: HttpClient
    relay: Any  # a RelayClient (or a test double), None when the manifest names no relay
    cancel: threading.Event
    started: float
    every: list[Part]  # every part the source fills
    mine: list[Part]  # the ones this run is responsible for (--parts)
    pre: Preflight | None = None
    server_now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    journal: Journal | None = None
    done: set[int] = field(default_factory=set)  # part numbers known to be on the server
    todo: list[PartTask] = field(default_factory=list)
    total: int = 0  # bytes of the parts this run is responsible for
    already: int = 0  # ... of which already on the server
    outcome: Outcome | None = None
    held: dict[int, tuple[int, str]] = field(default_factory=dict)  # stream: part -> (size, md5) on the server
    lock: Any = None  # the per-upload UploadLock (one put per upload on this machine)
    finished: bool = False  # the upload is complete: its lock file can go too
    relay_status: dict[str, Any] | None = None  # the relay's /v1/status before the first byte
    listing: list[dict[str, Any]] | None = None  # the server's parts, from the listing or the relay
    found: dict[int, str] = field(default_factory=dict)  # parts the server holds with this file's MD5s

    @property
    def mp(self) -> str:
        return next_commands(self.opts.manifest_path, self.source.name)[0]

    @property
    def put_cmd(self) -> str:
        return next_commands(self.opts.manifest_path, self.source.name)[1]

    @property
    def mine_numbers(self) -> set[int]:
        return {p.number for p in self.mine}

    def result(self, **kw: Any) -> UploadResult:
        elapsed = time.monotonic() - self.started
        sent = kw.pop("bytes_sent", 0)
        size = self.source.size if self.source.size is not None else self.source.bytes_read
        base: dict[str, Any] = {"key": self.m.key, "bucket": self.m.bucket, "size": size, "etag": None,
                                "parts": len(self.every), "seconds": elapsed, "bytes_sent": sent,
                                "mib_per_s": sent / MiB / max(elapsed, 1e-6), "completed": False}
        return UploadResult(**{**base, **kw})

    def close(self) -> None:
        try:
            self.source.close()
            self.http.close()
        finally:
            if self.lock is not None:
                self.lock.release(forget=self.finished)


__all__ = ["UploadResult", "Options", "Run"]
