"""The API tokens file, re-read while the relay runs: revoking a token needs no restart.

The file's identity (inode, size, mtime in ns) is looked at on a request at most once per
``interval`` seconds (and at once on SIGHUP); when it changed, the file is parsed again with the
same strict loader as at start-up. A file that does not parse, half-written in place, replaced by
garbage or removed, keeps the tokens in force: the reason is logged, shown in /readyz and counted
(``s3mpu_relay_tokens_reload_errors``, ``s3mpu_relay_tokens_file_ok``). To revoke every token,
write ``{"tokens": []}``. Under gunicorn each worker checks on its own (all within ``interval``).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from s3mpu.errors import S3mpuError
from s3mpu.relay.config import load_api_tokens

log = logging.getLogger("s3mpu.relay")


class TokensFile:
    """Keeps ``config.api_tokens`` in step with the file at ``path``."""

    def __init__(self, path: str, config: Any, *, interval: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_state: Callable[[bool, int, bool], None] | None = None) -> None:
        self.path, self.config, self.interval, self.monotonic = path, config, interval, monotonic
        self.on_state = on_state  # (ok, tokens in force, a reload just failed)
        self.error: str | None = None
        self._seen: tuple[int, int, int] | None = None
        self._checked = monotonic()
        self._lock = threading.Lock()
        self._seen = self._identity()  # the tokens in config were just loaded from this file
        if on_state:
            on_state(True, len(config.api_tokens), False)

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def check(self, force: bool = False) -> None:
        """Reload when due and changed; cheap enough to call on every request."""
        now = self.monotonic()
        if not force and now - self._checked < self.interval:
            return
        if not self._lock.acquire(blocking=force):
            return  # another thread is checking right now
        try:
            self._checked = now
            seen = self._identity()
            if seen == self._seen and not force:
                return
            self._seen = seen
            self._reload()
        finally:
            self._lock.release()

    def _reload(self) -> None:
        try:
            tokens = load_api_tokens(self.path)
        except S3mpuError as exc:
            self.error = exc.message
            log.warning("tokens file %s changed but cannot be used (%s); keeping the %d token(s) in force",
                        self.path, exc.message, len(self.config.api_tokens))
            if self.on_state:
                self.on_state(False, len(self.config.api_tokens), True)
            return
        old = {t.name for t in self.config.api_tokens}
        self.config.api_tokens = tokens
        self.error = None
        new = {t.name for t in tokens}
        log.info("tokens file %s reloaded: %d token(s)%s%s", self.path, len(tokens),
                 f", added {', '.join(sorted(new - old))}" if new - old else "",
                 f", removed {', '.join(sorted(old - new))}" if old - new else "")
        if self.on_state:
            self.on_state(True, len(tokens), False)

    def status(self) -> dict[str, Any]:
        """For /readyz: whether the file on disk is the one in force (no path, no message: those are in the log)."""
        out: dict[str, Any] = {"ok": self.error is None}
        if self.error is not None:
            out["problem"] = "the tokens file on disk does not parse; the previous tokens stay in force (see the log)"
        return out
