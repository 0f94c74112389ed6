"""The Python API's convenience functions: the CLI's main verbs, with Python-friendly arguments.

Why a separate layer: the library modules take exact types (a botocore client, a MintRequest,
a ProgressSink); here the same calls accept what a script or notebook has at hand: an
``s3://`` string, ``"10G"``, ``"12h"``, a path or a Manifest, ``progress=True``. Nothing here
prints unless asked to; errors are the same :class:`s3mpu.errors.S3mpuError` subclasses the
CLI maps to exit codes.

    >>> import s3mpu
    >>> m = s3mpu.mint("s3://media/raw.mov", size="10G", expires="3d", output="raw.json")  # admin
    >>> s3mpu.upload("raw.json", "raw.mov")                                                 # user
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from s3mpu.config import Settings, load_settings, s3_client
from s3mpu.errors import UsageError
from s3mpu.manifest import Manifest, dump, load
from s3mpu.admin.plan import Plan, load_plan, make_plan
from s3mpu.bundle import Bundle
from s3mpu.plan_dir import DirPlan
from s3mpu.s3uri import S3Uri
from s3mpu.units import parse_expires, parse_size

ProgressArg = bool | Callable[[int, int | None], Any] | Any | None


def _target(target: str, key: str | None) -> tuple[str, str]:
    if target.startswith("s3://"):
        if key is not None:
            raise UsageError("give either s3://BUCKET/KEY or bucket and key, not both")
        uri = S3Uri.parse(target, need_key=True)
        return uri.bucket, uri.key
    if not key:
        raise UsageError(f"no object key for bucket {target!r}", "Call mint('s3://BUCKET/KEY', ...) or mint(bucket, key, ...).")
    return target, key


def _size(v: int | str | None) -> int | None:
    return None if v is None else parse_size(v)


def mint(target: str, key: str | None = None, *, size: int | str | None = None, max_size: int | str | None = None,
         plan: Plan | str | os.PathLike[str] | None = None, part_size: int | str | None = None,
         expires: datetime | str | int | None = None, content_type: str | None = None,
         metadata: Mapping[str, str] | None = None, acl: str | None = None, relay_url: str | None = None,
         relay_secret: str | None = None, settings: Settings | None = None, client: Any = None,
         output: str | os.PathLike[str] | None = None) -> Manifest:
    """Create the multipart upload and return its manifest (written 0600 to ``output`` when given).

    ``settings`` defaults to the same layers the CLI reads (``AWS_*`` variables, ``~/.s3cfg``,
    boto3's chain); pass ``client`` to use a boto3 S3 client you built yourself. Exactly one of
    ``size``, ``max_size`` and ``plan`` (a :class:`Plan` or its path) gives the size.
    """
    from s3mpu.admin.mint import MintRequest
    from s3mpu.admin.mint import mint as do_mint

    bucket, key = _target(target, key)
    settings = settings or load_settings()
    client = client or s3_client(settings)
    md5s = sha256 = None
    if plan is not None:
        if size is not None or max_size is not None:
            raise UsageError("plan already gives the size; drop size/max_size")
        p = plan if isinstance(plan, Plan) else load_plan(plan)
        size, part_size, md5s, sha256 = p.size, p.part_size, p.md5s, p.sha256
    req = MintRequest(bucket=bucket, key=key, size=_size(size), max_size=_size(max_size),
                      part_size=_size(part_size) or settings.part_size,
                      expires=parse_expires(expires) if isinstance(expires, str | int) else expires,
                      content_type=content_type, metadata=dict(metadata or {}), acl=acl,
                      relay_url=relay_url or settings.relay_url, md5s=md5s, sha256=sha256)
    signature_version = _presign_version(client, bucket, key, settings)
    m = do_mint(client, req, endpoint=client.meta.endpoint_url, region=client.meta.region_name,
                relay_secret=relay_secret or settings.relay_secret, signature_version=signature_version)
    if output is not None:
        try:
            dump(m, output)
        except OSError:
            from s3mpu.admin.housekeeping import abort_upload

            abort_upload(client, m.bucket, m.key, m.upload_id)
            raise
    return m


def _presign_version(client: Any, bucket: str, key: str, settings: Settings) -> str:
    """What the client really presigns with (``client.meta.config`` says "s3v4" even when it uses SigV2);
    refused (64) when the settings ask for SigV4 and the client would sign SigV2 (strict servers refuse it)."""
    url = client.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60)
    version = "s3v4" if "X-Amz-Signature=" in url else "s3"
    if version != settings.signature_version and settings.signature_version == "s3v4":
        # boto3 presigns with SigV2 unless the client was built asking for SigV4
        raise UsageError("this S3 client presigns with SigV2, which strict servers refuse",
                         "Build it with botocore.config.Config(signature_version='s3v4'), or pass settings instead.")
    return version


class CallbackProgress:
    """Adapts ``callback(done_bytes, total_bytes)`` to the upload engine's progress protocol.

    Called from worker threads (make it thread-safe and quick); ``done`` counts bytes already
    on the server from a previous run, and may step back when a failed attempt is retried.
    """

    def __init__(self, callback: Callable[[int, int | None], Any]) -> None:
        import threading

        self.callback = callback
        self.total: int | None = 0
        self.done = 0
        self._lock = threading.Lock()

    def start(self, total: int | None, done: int, parts: int | None) -> None:
        # total is None for a stream (path "-"): the callback then gets None as its total
        with self._lock:
            self.total, self.done = total, done
        self.callback(done, total)

    def part_started(self, number: int, size: int) -> None:
        pass

    def advance(self, n: int, number: int = 0) -> None:
        with self._lock:
            self.done += n
            done, total = self.done, self.total
        self.callback(done, total)

    def part_finished(self, number: int, ok: bool) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(progress: ProgressArg) -> Any:
    from s3mpu.user.progress import NullProgress, TqdmProgress

    if progress is True:
        return TqdmProgress()
    if progress is None or progress is False:
        return NullProgress()
    if hasattr(progress, "advance") and hasattr(progress, "start"):
        return progress  # a ProgressSink
    if callable(progress):
        return CallbackProgress(progress)
    raise UsageError(f"progress must be True, False, a callback(done, total) or a ProgressSink, not {progress!r}")


def upload(manifest: Manifest | str | os.PathLike[str], path: str | os.PathLike[str], *,
           progress: ProgressArg = True, **options: Any) -> Any:
    """Upload ``path`` through ``manifest`` (a :class:`Manifest` or its file) and complete it.

    ``progress=True`` shows a tqdm bar (``tqdm.auto``: a widget in notebooks), ``False`` nothing,
    a callable is called as ``callback(done_bytes, total_bytes)``. Other keyword arguments go
    to :func:`s3mpu.user.upload.upload` (``jobs``, ``retries``, ``limit_rate``, ``parts``,
    ``complete``, ``relay``...). Returns an :class:`s3mpu.user.upload.UploadResult`; re-running after
    a failure resumes.
    """
    from s3mpu.user.upload import upload as do_upload

    manifest_path = None
    if not isinstance(manifest, Manifest):
        manifest_path = str(manifest)
        manifest = load(manifest)
    options.setdefault("manifest_path", manifest_path)
    return do_upload(manifest, path, progress=_progress(progress), **options)


def complete(manifest: Manifest | str | os.PathLike[str], *, settings: Settings | None = None,
             relay_url: str | None = None) -> dict[str, Any]:
    """Complete the upload as ``s3mpu complete`` does; ``{key, bucket, etag, size, parts, completed, how}``.

    Directly when ``settings`` (default: :func:`load_settings`) hold S3 credentials, else through the
    manifest's relay (or ``relay_url``). The part MD5s this machine's journal recorded are checked;
    completing an already-completed upload succeeds again.
    """
    from s3mpu.completing import complete_manifest

    manifest_path = None
    if not isinstance(manifest, Manifest):
        manifest_path = str(manifest)
        manifest = load(manifest)
    reply, how = complete_manifest(manifest, settings if settings is not None else load_settings(),
                                   relay_url=relay_url, manifest_path=manifest_path)
    return {"key": manifest.key, "bucket": manifest.bucket, "etag": reply.get("etag"), "size": reply.get("size"),
            "parts": reply.get("parts"), "completed": True, "how": how}


def plan(path: str | os.PathLike[str], part_size: int | str | None = None, *,
         output: str | os.PathLike[str] | None = None) -> Plan:
    """Hash a file into a :class:`Plan` (per-part MD5, file SHA-256); written to ``output`` when given."""
    from s3mpu.admin.plan import dump_plan

    p = make_plan(path, _size(part_size))
    if output is not None:
        dump_plan(p, output)
    return p


# -- folders (bundles, SPEC §8) ------------------------------------------------------------
def plan_directory(path: str | os.PathLike[str], part_size: int | str | None = None, *, sizes_only: bool = False,
                   filters: Sequence[tuple[str, str]] = (), follow_symlinks: bool = False, jobs: int | None = None,
                   progress: Callable[[int, int, int, int], Any] | None = None,
                   notice: Callable[[str], Any] | None = None,
                   output: str | os.PathLike[str] | None = None) -> DirPlan:
    """Plan every regular file of a folder, as ``s3mpu plan DIR`` does (written 0600 to ``output`` when given).

    ``filters`` are ``("exclude" | "include", glob)`` pairs in aws-cli's order (the last match
    wins); ``progress(done_bytes, total_bytes, done_files, total_files)`` is called from the
    hashing threads; ``notice(text)`` hears about skipped symlinks and special files (default:
    nothing). The core is :func:`s3mpu.plan_dir.plan_dir`.
    """
    from s3mpu.plan_dir import dump_dir_plan, plan_dir

    p = plan_dir(path, part_size=_size(part_size), sizes_only=sizes_only, filters=filters,
                 follow_symlinks=follow_symlinks, jobs=jobs, progress=progress, notice=notice)
    if output is not None:
        dump_dir_plan(p, output)
    return p


def mint_bundle(target: str, plan: DirPlan | str | os.PathLike[str], *, expires: datetime | str | int | None = None,
                content_type: str | None = None, metadata: Mapping[str, str] | None = None, acl: str | None = None,
                storage_class: str | None = None, relay_url: str | None = None, relay_secret: str | None = None,
                settings: Settings | None = None, client: Any = None,
                output: str | os.PathLike[str] | None = None) -> Bundle:
    """Mint a bundle for every file of a folder's plan under ``s3://BUCKET/PREFIX/`` (``s3mpu mint ... --plan``).

    One presigned PUT per file of at most one part, a multipart upload (with its relay token) per
    larger file; the content type is guessed per file unless ``content_type`` is given. When any
    step fails, every upload already created is aborted before the error is raised. Written 0600
    to ``output`` when given (its uploads are aborted if that write fails).
    """
    from s3mpu.admin.mint_bundle import BundleRequest, abort_all, files_from_plan
    from s3mpu.admin.mint_bundle import mint_bundle as do_mint
    from s3mpu.bundle import dump as dump_bundle
    from s3mpu.plan_dir import load_dir_plan

    uri = S3Uri.parse(target)
    if uri.key and not uri.key.endswith("/"):
        raise UsageError(f"{target} names one object; a bundle goes under a prefix ending in '/'",
                         f"Call mint_bundle('{target}/', plan).")
    settings = settings or load_settings()
    client = client or s3_client(settings)
    p = plan if isinstance(plan, DirPlan) else load_dir_plan(plan)
    req = BundleRequest(bucket=uri.bucket, prefix=uri.key, files=files_from_plan(p),
                        expires=parse_expires(expires) if isinstance(expires, str | int) else expires,
                        content_type=content_type, metadata=dict(metadata or {}), acl=acl,
                        storage_class=storage_class, relay_url=relay_url or settings.relay_url)
    signature_version = _presign_version(client, uri.bucket, uri.key or "x", settings)
    b = do_mint(client, req, endpoint=client.meta.endpoint_url, region=client.meta.region_name,
                relay_secret=relay_secret or settings.relay_secret, signature_version=signature_version)
    if output is not None:
        try:
            dump_bundle(b, output)
        except OSError:
            abort_all(client, [o.manifest for o in b.objects if o.manifest is not None])
            raise
    return b


__all__ = ["mint", "upload", "complete", "plan", "plan_directory", "mint_bundle", "CallbackProgress"]
