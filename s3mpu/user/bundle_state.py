"""The state a bundle run keeps per object, and the small pieces the scheduler hands to the engine.

Split from :mod:`s3mpu.user.bundle_put` so the scheduler module holds only the scheduling:
- :class:`ObjState`: one object's progress (tasks outstanding, its error, its multipart run);
- :class:`Budget`: the bytes of small files held in memory, taken before a file is read and
  given back when its PUT is over, so memory is bounded by bytes, never by the number of files;
- :class:`EngineProgress`: the transfer engine reports parts; a bundle's display hears files.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from s3mpu.bundle import BundleObject
from s3mpu.errors import S3mpuError
from s3mpu.user.bundle_result import BundleProgress, ObjectResult
from s3mpu.user.parts import PartDone
from s3mpu.user.state import Run


@dataclass(slots=True)
class ObjState:
    """One object's progress through the run."""

    o: BundleObject
    result: ObjectResult
    outstanding: int = 0  # tasks handed out and not yet resolved
    error: S3mpuError | None = None
    run: Run | None = None  # multipart: the single-file pipeline's state
    done_parts: list[PartDone] = field(default_factory=list)
    all_handed: bool = False
    shown: bool = False  # the display heard it started
    started: bool = False  # its completion started
    resolved: bool = False


class Budget:
    """Bytes of small objects in memory: taken before a file is read, given back once its PUT is over."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.cond = threading.Condition()

    def take(self, n: int, cancel: threading.Event) -> bool:
        with self.cond:
            while self.used and self.used + n > self.limit:
                if cancel.is_set():
                    return False
                self.cond.wait(0.1)
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self.cond:
            self.used -= n
            self.cond.notify_all()



def named(path: str, err: S3mpuError) -> S3mpuError:
    """Each failure names its file (messages of the single-file steps name the part or the manifest)."""
    if not err.message.startswith(path):
        err.message = f"{path}: {err.message}"
        err.args = (err.message,)
    return err


class EngineProgress:
    """The transfer engine's part-level reports, turned into a bundle's file-level ones."""

    def __init__(self, by_task: dict[int, tuple[ObjState, int]], progress: BundleProgress) -> None:
        self.by_task = by_task
        self.progress = progress

    def start(self, total: int | None, done: int, parts: int | None) -> None:
        pass

    def read(self, n: int) -> None:
        pass

    def part_started(self, number: int, size: int) -> None:
        st, _part = self.by_task[number]
        if not st.shown:
            st.shown = True
            self.progress.file_started(st.o.path, st.o.size)

    def advance(self, n: int, number: int = 0) -> None:
        self.progress.advance(n, self.by_task[number][0].o.path)

    def part_finished(self, number: int, ok: bool) -> None:
        pass

    def close(self) -> None:
        pass



__all__ = ["ObjState", "Budget", "EngineProgress", "named"]
