"""What ``put BUNDLE DIR`` reports: one :class:`ObjectResult` per object as it ends, one :class:`BundleResult`.

Why apart from the scheduler: the CLI prints these (a JSON line per object, the summary, the
exit status) and the Python API returns them; neither needs the machinery that made them.
The exit status follows SPEC §8: 0 when every object is on the server; 2 when some are and
others failed (a re-run resumes them); one cause's own code when none could be uploaded for
that one cause (77 expired or refused, 75 unreachable, ...).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol

from s3mpu.errors import InterruptedError_, PartialError, S3mpuError

DONE = "done"  # on the server (sent now, or completed now)
FAILED = "failed"
UPLOADED = "uploaded"  # every part is on the server, not completed (--no-complete, or no relay)
NOT_SENT = "not_sent"  # the run stopped before this object was tried


@dataclass(slots=True)
class ObjectResult:
    path: str
    key: str
    size: int
    state: str
    etag: str | None = None
    error: S3mpuError | None = None
    bytes_sent: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "key": self.key, "state": self.state, "size": self.size, "etag": self.etag,
                "error": self.error.message if self.error else None,
                "exit_code": self.error.exit_code if self.error else None, "bytes_sent": self.bytes_sent}


@dataclass
class BundleResult:
    """The whole run; ``skipped`` objects were on the server before it started (an earlier run)."""

    uri: str
    objects: int
    done: int = 0
    skipped: int = 0
    uploaded: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    failed: list[ObjectResult] = field(default_factory=list)
    not_sent: list[ObjectResult] = field(default_factory=list)
    unnamed: int = 0  # files in DIR the bundle does not name: reported, never uploaded
    unnamed_examples: list[str] = field(default_factory=list)
    fatal: S3mpuError | None = None  # what stopped the run for every object (an expired bundle, Ctrl-C)
    rerun: str = ""
    finished_before: bool = False  # every object landed in an earlier run (recognised by the bundle's digest)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": True, "bundle": self.uri, "objects": self.objects, "done": self.done,
                "skipped": self.skipped, "uploaded_not_completed": self.uploaded, "failed": len(self.failed),
                "not_sent": len(self.not_sent), "bytes_sent": self.bytes_sent, "seconds": round(self.seconds, 3),
                "unnamed_files": self.unnamed, "finished_before": self.finished_before,
                "failures": [{"path": r.path, "error": r.error.message if r.error else None,
                              "exit_code": r.error.exit_code if r.error else None} for r in self.failed],
                "error": self.fatal.message if self.fatal else None}

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_sent and self.fatal is None

    def error(self) -> S3mpuError | None:
        """The error this run ends with (None: every object landed), naming each failed file and the next step.

        Nothing landed in this run for one cause (every file refused, the server unreachable, the
        bundle expired): that cause's own error and exit code. Otherwise 2 (PARTIAL).
        """
        if self.ok:
            return None
        bad = self.failed + self.not_sent
        landed_now = self.done - self.skipped
        if isinstance(self.fatal, InterruptedError_) or (self.fatal is not None and not landed_now and not self.failed):
            return _with(self.fatal, self.fatal.message, self.fatal.hint or f"Re-run the same command: {self.rerun}")
        names = "; ".join(f"{r.path}: {r.error.message if r.error else 'not sent'}" for r in self.failed[:5])
        more = f" (and {len(self.failed) - 5} more)" if len(self.failed) > 5 else ""
        causes = [r.error for r in self.failed if r.error] + ([self.fatal] if self.fatal else [])
        if not landed_now and causes and len({c.exit_code for c in causes}) == 1:
            first = causes[0]
            return _with(first, f"none of the {len(bad)} objects could be uploaded: {names or first.message}{more}",
                         first.hint or f"Fix the cause, then re-run: {self.rerun}")
        what = f"{len(bad)} of {self.objects} objects were not uploaded"
        return PartialError(f"{what}: {names}{more}" if names else what,
                            f"Fix what is named above, then re-run the same command; it resumes: {self.rerun}")


def _with(err: S3mpuError, message: str, hint: str) -> S3mpuError:
    """A copy of ``err`` (its class, so its exit code) with another message and hint."""
    out = copy.copy(err)
    out.message, out.hint, out.args = message, hint, (message,)
    return out


class BundleProgress(Protocol):
    """What a bundle's display hears: bytes and files. Implementations must be thread-safe."""

    def start(self, total_bytes: int, done_bytes: int, total_files: int, done_files: int) -> None: ...

    def file_started(self, path: str, size: int) -> None: ...

    def advance(self, n: int, path: str = "") -> None:
        """``n`` more bytes of ``path`` were sent (negative: a failed attempt gave them back)."""

    def file_finished(self, path: str, ok: bool) -> None: ...

    def close(self) -> None: ...


class NullBundleProgress:
    def start(self, total_bytes: int, done_bytes: int, total_files: int, done_files: int) -> None:
        pass

    def file_started(self, path: str, size: int) -> None:
        pass

    def advance(self, n: int, path: str = "") -> None:
        pass

    def file_finished(self, path: str, ok: bool) -> None:
        pass

    def close(self) -> None:
        pass


__all__ = ["ObjectResult", "BundleResult", "BundleProgress", "NullBundleProgress", "DONE", "FAILED", "UPLOADED",
           "NOT_SENT"]
