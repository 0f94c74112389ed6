"""``put BUNDLE DIR``: every object of a bundle through one pool of workers (SPEC §8).

Why one pool and two lanes: a 16 KiB PUT is all latency, a 64 MiB part is all bandwidth.
Small objects (single PUTs) are read whole into memory, so the bytes hashed are the bytes sent,
and the memory they hold is bounded by ``memory`` bytes, never by the number of files; many of
them are in flight at once (``jobs`` requests). The parts of multipart objects (and single PUTs
too large for memory) are streamed from their files as a single put streams them, at most
``big_jobs`` at a time, so they neither starve the small files nor are starved by them.

A multipart object is not uploaded by a copy of the single-file logic: its preflight, resume
and completion are :mod:`s3mpu.user.upload`'s own steps (``look_at_server``, ``find_done``,
``plan_sends``, ``check_sent``, ``finish``) on a :class:`~s3mpu.user.state.Run` of its own; only
its parts go to the shared :class:`~s3mpu.user.transfer.Transfer`, and it is completed through
the relay as soon as its last part is verified. The bundle journal records each object that
landed, so a re-run sends only what is missing and a finished bundle re-runs sending nothing.
"""
from __future__ import annotations

import contextvars
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from s3mpu.bundle import Bundle, BundleObject
from s3mpu.errors import DataError, InterruptedError_, NoInputError, S3mpuError, UsageError
from s3mpu.units import MiB, parse_size
from s3mpu.user.bundle_files import Folder, count_unnamed
from s3mpu.user.bundle_journal import BundleJournal, finished_note, note_finished
from s3mpu.user.bundle_state import Budget, EngineProgress, ObjState, named
from s3mpu.user.bundle_result import (DONE, FAILED, NOT_SENT, UPLOADED, BundleProgress, BundleResult,
                                      NullBundleProgress, ObjectResult)
from s3mpu.user.httpclient import HttpClient
from s3mpu.user.lock import UploadLock
from s3mpu.user.parts import Outcome, PartDone, PartTask, RetryPolicy
from s3mpu.user.progress import NullProgress
from s3mpu.user.ratelimit import TokenBucket
from s3mpu.user.sources import FileSource
from s3mpu.user.state import Options, Run
from s3mpu.user.transfer import Transfer
from s3mpu.user.window import Window

DEFAULT_BUNDLE_JOBS = 64  # requests in flight: small files are latency-bound (s5cmd runs 256)
DEFAULT_BIG_JOBS = 8  # parts of large objects streamed at once (a single put's default -j)
DEFAULT_MEMORY = 256 * MiB  # bytes of small objects held in memory at once


def put_bundle(bundle: Bundle | str | os.PathLike[str], directory: str | os.PathLike[str], *, jobs: int | None = None,
               big_jobs: int | None = None, retries: int = 5, limit_rate: int | str | None = None,
               complete: bool = True, progress: BundleProgress | Callable[[Bundle], BundleProgress] | None = None,
               relay: str | None = None,
               bundle_path: str | None = None, warn: Callable[[str], None] | None = None,
               info: Callable[[str], None] | None = None, on_object: Callable[[ObjectResult], None] | None = None,
               connect_timeout: float = 10.0, read_timeout: float = 60.0, retry: RetryPolicy | None = None,
               cancel: threading.Event | None = None, state_dir: Path | None = None, ca_bundle: str | None = None,
               proxy: str | None = None, memory: int | str | None = None, rerun: str | None = None) -> BundleResult:
    """Upload every object of ``bundle`` (a :class:`Bundle` or its path) from ``directory``; resume what an
    earlier run did::

        result = s3mpu.put_bundle("photos.bundle.json", "photos/")
        if result.error():
            print([(r.path, r.error) for r in result.failed])

    Returns a :class:`BundleResult` whatever happened to single objects (``result.error()`` is the
    error to raise, None when every object landed); raises only for what stops the whole run
    before it starts (the folder missing, another run of this bundle going on: 66, 75).
    ``on_object`` hears each object as it ends (the CLI's ``--json`` lines). ``progress`` may be a
    function of the loaded bundle that returns the display.

    Given a path, a bundle whose every object landed in an earlier run on this machine is
    recognised by the SHA-256 of its bytes and ends here (a finished 100,000-file bundle re-runs
    in a fraction of a second, sending nothing, without parsing it again).
    """
    digest = None
    if not isinstance(bundle, Bundle):
        from s3mpu.bundle import loads, read_raw

        bundle_path = bundle_path or str(bundle)
        raw = read_raw(bundle)
        digest = hashlib.sha256(raw).hexdigest()
        earlier = finished_note(digest, state_dir)
        if earlier is not None:
            n = int(earlier.get("objects", 0))
            return BundleResult(str(earlier.get("uri", "")), n, done=n, skipped=n, finished_before=True)
        text = raw.decode("utf-8", "surrogateescape")  # a name that is not UTF-8 is refused by path checks
        del raw  # 48 MB for 100,000 files: not held while the JSON is parsed, nor for the whole upload
        bundle = loads(text, f"bundle {bundle_path}")  # a malformed bundle is 65 whatever DIR is
        del text
    folder = Folder(directory)
    sink = progress(bundle) if callable(progress) and not hasattr(progress, "start") else progress
    lock = UploadLock.acquire(f"bundle:{bundle.id}", state_dir)
    try:
        result = _BundleRun(bundle, folder, jobs=jobs, big_jobs=big_jobs, retries=retries, limit_rate=limit_rate,
                            complete=complete, progress=sink, relay=relay,  # type: ignore[arg-type]
                            bundle_path=bundle_path, warn=warn, info=info, on_object=on_object,
                            connect_timeout=connect_timeout, read_timeout=read_timeout, retry=retry, cancel=cancel,
                            state_dir=state_dir, ca_bundle=ca_bundle, proxy=proxy, memory=memory, rerun=rerun).run()
    finally:
        lock.release()
    if digest is not None and result.ok and result.done == result.objects:
        note_finished(digest, {"uri": bundle.uri, "objects": result.objects, "bytes": bundle.total_size},
                      state_dir)
    return result


class _BundleRun:
    def __init__(self, bundle: Bundle, folder: Folder, *, jobs: int | None, big_jobs: int | None, retries: int,
                 limit_rate: int | str | None, complete: bool, progress: BundleProgress | None, relay: str | None,
                 bundle_path: str | None, warn: Callable[[str], None] | None, info: Callable[[str], None] | None,
                 on_object: Callable[[ObjectResult], None] | None, connect_timeout: float, read_timeout: float,
                 retry: RetryPolicy | None, cancel: threading.Event | None, state_dir: Path | None,
                 ca_bundle: str | None, proxy: str | None, memory: int | str | None, rerun: str | None) -> None:
        self.b, self.folder = bundle, folder
        self.jobs = max(1, int(jobs or DEFAULT_BUNDLE_JOBS))
        self.big_jobs = max(1, min(self.jobs, int(big_jobs or DEFAULT_BIG_JOBS)))
        mem = DEFAULT_MEMORY if memory is None else (parse_size(memory) if isinstance(memory, str) else int(memory))
        self.budget = Budget(max(1, mem))
        self.in_memory_max = max(1, mem // 4)  # a single PUT larger than this is streamed from its file
        rate = parse_size(limit_rate) if isinstance(limit_rate, str) else limit_rate
        self.limiter = TokenBucket(rate) if rate else None
        self.progress: BundleProgress = progress or NullBundleProgress()
        self.warn = warn or (lambda _s: None)
        self.on_object = on_object
        self.cancel = cancel or threading.Event()
        self.state_dir = state_dir
        self.relay_url = relay
        self.ca_bundle = ca_bundle
        self.http = HttpClient(self.jobs + 2, connect_timeout=connect_timeout, read_timeout=read_timeout,
                               ca_bundle=ca_bundle, proxy=proxy)
        self.opts = Options(jobs=self.big_jobs, retry=retry or RetryPolicy(retries=max(0, int(retries))), rate=rate,
                            subset=None, complete=complete, manifest_path=bundle_path, state_dir=state_dir,
                            progress=NullProgress(), warn=self.warn, info=info or (lambda _s: None))
        self.journal = BundleJournal.open(bundle.id, state_dir)
        self.big_slots = threading.Semaphore(self.big_jobs)
        self.by_task: dict[int, tuple[ObjState, int]] = {}  # task number -> (object, its part number)
        self.gid = 0
        self.lock = threading.Lock()
        self.ctx = contextvars.copy_context()  # the CLI's command line, for hints given from worker threads
        self.completers: list[threading.Thread] = []
        self.started = time.monotonic()
        self.result = BundleResult(bundle.uri, len(bundle.objects), rerun=rerun or
                                   f"s3mpu put {bundle_path or 'BUNDLE'} {folder.given}")
        self.objs: list[ObjState] = []

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> BundleResult:
        b, res = self.b, self.result
        done_before = self.journal.done
        todo = [o for o in b.objects if o.path not in done_before]
        res.skipped = res.done = len(b.objects) - len(todo)
        self.objs = [ObjState(o, ObjectResult(o.path, o.key, o.size, NOT_SENT)) for o in todo]
        unnamed: list[Any] = []
        named = {o.path for o in b.objects}
        scan = threading.Thread(target=lambda: unnamed.append(count_unnamed(self.folder.real, named)),
                                name="s3mpu-scan", daemon=True)
        scan.start()
        self.progress.start(b.total_size, sum(o.size for o in b.objects if o.path in done_before),
                            len(b.objects), res.skipped)
        transfer = Transfer(-1, self.http, jobs=self.jobs, retry=self.opts.retry, limiter=self.limiter,
                            progress=EngineProgress(self.by_task, self.progress), on_done=self._done, cancel=self.cancel,
                            on_release=self._release, on_failed=self._failed,
                            local_errors=(DataError, NoInputError, UsageError), queue_bound=4 * self.jobs,
                            chunk_buffers=True, max_failures=max(8, self.jobs), hash_in_order=False,
                            window=Window(self.jobs, least=8 + self.big_jobs))
        try:
            if todo:
                outcome = transfer.run(self._tasks())
                res.fatal = outcome.fatal
            for t in self.completers:
                t.join()
        except KeyboardInterrupt:
            self.cancel.set()
            res.fatal = InterruptedError_("interrupted: the objects already uploaded are recorded",
                                          f"Re-run the same command to resume: {res.rerun}")
        finally:
            self.progress.close()
            self.journal.close()
            self.http.close()
            for st in self.objs:
                if st.run is not None:
                    st.run.source.close()
        res.bytes_sent = transfer.bytes_sent
        for st in self.objs:
            if not st.resolved:
                st.result.error = st.error or res.fatal
                res.not_sent.append(st.result)
        scan.join(5.0)
        if unnamed:
            res.unnamed, res.unnamed_examples = unnamed[0]
        res.seconds = time.monotonic() - self.started
        return res

    def _tasks(self) -> Iterator[PartTask]:
        """Small objects and the big lane's tasks, interleaved; a big task only while a big slot is free."""
        small = self._small_tasks()
        big = self._big_tasks()
        small_left = big_left = True
        while small_left or big_left:
            if self.cancel.is_set():
                return
            if big_left and (self.big_slots.acquire(timeout=0.1) if not small_left
                             else self.big_slots.acquire(blocking=False)):
                task = next(big, None)
                if task is None:
                    self.big_slots.release()
                    big_left = False
                    continue
                yield task
                continue
            if small_left:
                task = next(small, None)
                if task is None:
                    small_left = False
                    continue
                yield task

    def _small_tasks(self) -> Iterator[PartTask]:
        for st in self.objs:
            o = st.o
            if o.manifest is not None or o.size > self.in_memory_max:
                continue
            if not self.budget.take(o.size, self.cancel):
                return
            try:
                data, md5 = self._read_whole(o)
            except S3mpuError as exc:
                self.budget.give(o.size)
                self._resolve(st, exc)
                continue
            yield PartTask(self._number(st, 0), 0, o.size, o.url or "", o.md5, self._content_md5(o),
                           data=memoryview(data), headers=tuple(o.headers.items()), label=o.path, data_md5=md5)

    def _big_tasks(self) -> Iterator[PartTask]:
        for st in self.objs:
            o = st.o
            if o.manifest is None and o.size <= self.in_memory_max:
                continue
            try:
                tasks = self.ctx.run(self._prepare, st)
            except S3mpuError as exc:
                self._resolve(st, exc)
                continue
            for i, t in enumerate(tasks):
                if i == len(tasks) - 1:
                    st.all_handed = True
                yield t
            st.all_handed = True
            self._maybe_finish(st)

    def _content_md5(self, o: BundleObject) -> bool:
        return self.b.signature_version == "s3v4" or o.md5 is not None  # SigV2 signs it whether sent or not

    def _task(self, st: ObjState, part: int, t: PartTask) -> PartTask:
        return replace(t, number=self._number(st, part))

    def _number(self, st: ObjState, part: int) -> int:
        """A new task number for ``part`` of ``st`` (the engine numbers tasks; one bundle has many part 1s)."""
        with self.lock:
            self.gid += 1
            gid = self.gid
            self.by_task[gid] = (st, part)
            st.outstanding += 1
        return gid

    def _read_whole(self, o: BundleObject) -> tuple[bytes, str]:
        """The file's bytes and their MD5, checked against the bundle (size, the plan's MD5): 66 missing, 65 changed."""
        f = self.folder.open(o.path)
        try:
            data = os.read(f.fd, o.size + 1)  # one call: a regular file's short read is its end (POSIX)
            while 0 < len(data) < o.size:  # a filesystem that reads in pieces (or a file that shrank)
                more = os.read(f.fd, o.size + 1 - len(data))
                if not more:
                    break
                data += more
        finally:
            os.close(f.fd)
        if len(data) != o.size:
            raise DataError(f"{o.path}: is {len(data) if len(data) <= o.size else 'more than ' + str(o.size)} bytes, "
                            f"the bundle says {o.size}: it changed since it was planned; not uploaded",
                            "Restore the planned file, or ask the admin for a new bundle.")
        md5 = hashlib.md5(data).hexdigest()
        if o.md5 and md5 != o.md5:
            raise DataError(f"{o.path}: its content differs from the plan (MD5); it changed since it was planned; "
                            "not uploaded", "Restore the planned file, or ask the admin for a new bundle.")
        return data, md5

    def _prepare(self, st: ObjState) -> list[PartTask]:
        """The big lane's tasks of one object: a streamed single PUT, or a multipart upload's parts still to send."""
        o = st.o
        if o.manifest is None:
            f = self.folder.open(o.path)
            if f.size != o.size:
                os.close(f.fd)
                raise DataError(f"{o.path}: is {f.size} bytes, the bundle says {o.size}: it changed since it was "
                                "planned; not uploaded", "Restore the planned file, or ask the admin for a new bundle.")
            return [self._task(st, 0, PartTask(0, 0, o.size, o.url or "", o.md5, self._content_md5(o), fd=f.fd,
                                               headers=tuple(o.headers.items()), label=o.path))]
        from s3mpu.user import upload as single

        m = o.manifest
        f = self.folder.open(o.path)  # refuses FIFOs, devices and links leaving the folder before FileSource opens it
        os.close(f.fd)
        source = FileSource.open(m, f.path)
        every, mine = source.parts(m, None)
        run = st.run = Run(m, source, self.opts, self.http, single.make_relay(m, self.relay_url,
                                                                              ca_bundle=self.ca_bundle),
                           self.cancel, time.monotonic(), every, mine)
        gone = single.look_at_server(run)
        if gone is not None:  # completed by an earlier run (or another machine): the object is there
            self._resolve(st, None, etag=gone.etag)
            return []
        single.find_done(run)
        single.plan_sends(run)
        return [self._task(st, t.number, replace(t, fd=source.fd, label=f"{o.path} (part {t.number})"))
                for t in run.todo]

    # -- callbacks from the workers ----------------------------------------------------------
    def _done(self, d: PartDone) -> None:
        st, part = self.by_task[d.number]
        if st.run is None:  # a single PUT: its ETag is its MD5 (checked by the transfer)
            st.result.bytes_sent += d.size if d.attempts else 0
            self.journal.record(st.o.path, st.o.size, d.etag)
            self._resolve(st, None, etag=d.etag)
            return
        assert st.run.journal is not None
        st.run.journal.record(part, d.size, d.md5)
        with self.lock:
            st.done_parts.append(replace(d, number=part))
            st.result.bytes_sent += d.size if d.attempts else 0
            st.outstanding -= 1
        self._maybe_finish(st)

    def _failed(self, task: PartTask, err: S3mpuError) -> None:
        st, _part = self.by_task[task.number]
        with self.lock:
            st.error = st.error or err
            if st.run is not None:
                st.outstanding -= 1
        if st.run is None:
            self._resolve(st, err)
        else:
            self._maybe_finish(st)

    def _release(self, task: PartTask) -> None:
        st, _part = self.by_task[task.number]
        if task.data is not None:
            self.budget.give(task.size)
        else:
            self.big_slots.release()
            if task.fd is not None and st.run is None:
                os.close(task.fd)

    # -- ending an object --------------------------------------------------------------------
    def _maybe_finish(self, st: ObjState) -> None:
        """A multipart object whose every task is resolved: complete it (in a thread of its own) or fail it."""
        with self.lock:
            if st.resolved or not st.all_handed or st.outstanding or st.run is None or st.started:
                return
            st.started = True
        if st.error is not None:
            self._resolve(st, st.error)
            return
        t = threading.Thread(target=self.ctx.run, args=(self._complete, st), name="s3mpu-complete", daemon=True)
        self.completers.append(t)
        t.start()

    def _complete(self, st: ObjState) -> None:
        from s3mpu.user import upload as single

        run = st.run
        assert run is not None
        run.outcome = Outcome(done=list(st.done_parts), bytes_sent=st.result.bytes_sent)
        run.done |= {d.number for d in st.done_parts}
        try:
            single.check_sent(run)
            r = single.finish(run)
        except S3mpuError as exc:
            self._resolve(st, exc)
            return
        except Exception as exc:  # noqa: BLE001 - one object's surprise must not stop the others
            self._resolve(st, S3mpuError(f"{st.o.path}: {type(exc).__name__}: {exc}"))
            return
        if r.completed:
            self.journal.record(st.o.path, st.o.size, r.etag)
            self._resolve(st, None, etag=r.etag)
        else:
            self._resolve(st, None, state=UPLOADED)

    def _resolve(self, st: ObjState, err: S3mpuError | None, etag: str | None = None, state: str = DONE) -> None:
        with self.lock:
            if st.resolved:
                return
            st.resolved = True
            r = st.result
            r.etag = etag
            if err is not None:
                r.state, r.error = FAILED, named(st.o.path, err)
                self.result.failed.append(r)
            else:
                r.state = state
                if state == DONE:
                    self.result.done += 1
                else:
                    self.result.uploaded += 1
        self.progress.file_finished(st.o.path, err is None)
        if self.on_object is not None:
            self.on_object(r)


__all__ = ["put_bundle", "DEFAULT_BUNDLE_JOBS", "DEFAULT_BIG_JOBS", "DEFAULT_MEMORY"]
