"""Admin-side S3 calls with credentials: abort, list in-progress uploads, clean up stale ones.

These back ``s3mpu abortmp``, ``listmp`` and ``cleanup`` (s3cmd's names). Incomplete multipart
uploads cost storage until aborted and are invisible to ``ls``, so a cron job running
``cleanup`` is the admin's safety net for manifests that were handed out and never used.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from s3mpu.s3errors import classify_boto
from s3mpu.units import utc_iso

DEFAULT_OLDER_THAN = 7 * 86400


@dataclass(frozen=True)
class UploadInfo:
    """One in-progress multipart upload; ``parts``/``size`` are None when not asked for."""

    bucket: str
    key: str
    upload_id: str
    initiated: str | None  # ISO-8601 UTC; None when the server does not say
    age_seconds: int | None
    parts: int | None = None
    size: int | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CleanupResult:
    """What ``cleanup`` did: ``aborted`` (or would abort, with ``dry_run``), ``kept``, ``failed``."""

    bucket: str
    prefix: str
    older_than: int
    dry_run: bool
    aborted: list[UploadInfo] = field(default_factory=list)
    kept: list[UploadInfo] = field(default_factory=list)
    failed: list[tuple[UploadInfo, Exception]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "prefix": self.prefix, "older_than": self.older_than, "dry_run": self.dry_run,
                "aborted": [u.to_dict() for u in self.aborted], "kept": [u.to_dict() for u in self.kept],
                "failed": [{**u.to_dict(), "error": getattr(e, "message", str(e))} for u, e in self.failed]}


def _code(exc: BaseException) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


def abort_upload(client: Any, bucket: str, key: str, upload_id: str) -> bool:
    """Abort an upload; True when aborted now, False when it was already gone (which is fine)."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception as exc:
        if _code(exc) == "NoSuchUpload":
            return False
        raise classify_boto(exc, f"aborting upload {upload_id} of s3://{bucket}/{key}") from None
    return True


def _age(initiated: Any, now: datetime) -> tuple[str | None, int | None]:
    if not isinstance(initiated, datetime):
        return None, None
    if initiated.tzinfo is None:
        initiated = initiated.replace(tzinfo=timezone.utc)
    return utc_iso(initiated), int((now - initiated).total_seconds())


def list_parts(client: Any, bucket: str, key: str, upload_id: str) -> list[dict[str, Any]]:
    """Every part S3 holds for one upload: ``number, size, etag, last_modified`` (pagination followed)."""
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
    try:
        while True:
            resp = client.list_parts(**kwargs)
            for p in resp.get("Parts", []) or []:
                modified = p.get("LastModified")
                out.append({"number": int(p["PartNumber"]), "size": int(p.get("Size", 0)),
                            "etag": str(p.get("ETag", "")).strip('"'),
                            "last_modified": utc_iso(modified) if isinstance(modified, datetime) else None})
            marker = resp.get("NextPartNumberMarker")
            if not resp.get("IsTruncated") or not marker:
                return out
            kwargs["PartNumberMarker"] = marker
    except Exception as exc:
        raise classify_boto(exc, f"listing the parts of upload {upload_id} of s3://{bucket}/{key}") from None


def parts_summary(client: Any, bucket: str, key: str, upload_id: str) -> tuple[int, int]:
    """(parts uploaded so far, their total bytes), following ListParts pagination."""
    count = total = 0
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
    while True:
        resp = client.list_parts(**kwargs)
        for p in resp.get("Parts", []) or []:
            count += 1
            total += int(p.get("Size", 0))
        marker = resp.get("NextPartNumberMarker")
        if not resp.get("IsTruncated") or not marker:
            return count, total
        kwargs["PartNumberMarker"] = marker


def list_uploads(client: Any, bucket: str, prefix: str = "", *, with_parts: bool = True,
                 now: datetime | None = None, page_size: int | None = None) -> list[UploadInfo]:
    """Every in-progress upload under ``prefix``, oldest first (pagination followed).

    ``with_parts`` costs one ListParts per upload; an upload that vanishes between the two
    calls (completed or aborted meanwhile) is reported with 0 parts rather than failing the list.
    """
    now = now or datetime.now(timezone.utc)
    out: list[UploadInfo] = []
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if prefix:
        kwargs["Prefix"] = prefix
    if page_size:
        kwargs["MaxUploads"] = page_size
    try:
        while True:
            resp = client.list_multipart_uploads(**kwargs)
            for u in resp.get("Uploads", []) or []:
                initiated, age = _age(u.get("Initiated"), now)
                out.append(UploadInfo(bucket, u["Key"], u["UploadId"], initiated, age))
            if not resp.get("IsTruncated"):
                break
            key_marker, id_marker = resp.get("NextKeyMarker"), resp.get("NextUploadIdMarker")
            if not key_marker and not id_marker:
                break
            kwargs["KeyMarker"], kwargs["UploadIdMarker"] = key_marker or "", id_marker or ""
    except Exception as exc:
        if _code(exc) != "NoSuchUpload":  # rclone's answer for a bucket that never had an upload
            raise classify_boto(exc, f"listing uploads in s3://{bucket}/{prefix}") from None
    if with_parts:
        detailed = []
        for u in out:
            try:
                n, size = parts_summary(client, bucket, u.key, u.upload_id)
            except Exception as exc:
                if _code(exc) != "NoSuchUpload":
                    raise classify_boto(exc, f"listing parts of {u.upload_id} ({u.uri})") from None
                n, size = 0, 0
            detailed.append(UploadInfo(u.bucket, u.key, u.upload_id, u.initiated, u.age_seconds, n, size))
        out = detailed
    out.sort(key=lambda u: (u.initiated or "", u.key))
    return out


def _with_parts(client: Any, u: UploadInfo) -> UploadInfo:
    """``u`` with its part count and bytes, or unchanged (None, None) when the server will not say."""
    try:
        n, size = parts_summary(client, u.bucket, u.key, u.upload_id)
    except Exception:  # noqa: BLE001 - gone meanwhile, or no ListParts (s3rver): the report says "?"
        return u
    return replace(u, parts=n, size=size)


def cleanup(client: Any, bucket: str, prefix: str = "", *, older_than: int = DEFAULT_OLDER_THAN,
            dry_run: bool = False, now: datetime | None = None) -> CleanupResult:
    """Abort uploads initiated more than ``older_than`` seconds ago (none with ``dry_run``).

    Uploads whose age the server does not report are kept: never abort what we cannot date.
    One failed abort does not stop the others; the caller decides the exit status from
    ``failed`` (the CLI exits 2 so cron notices, and a re-run retries).
    """
    result = CleanupResult(bucket, prefix, older_than, dry_run)
    for u in list_uploads(client, bucket, prefix, with_parts=False, now=now):
        u = _with_parts(client, u)  # before the abort: what it held is what the abort frees
        if u.age_seconds is None or u.age_seconds < older_than:
            result.kept.append(u)
            continue
        if dry_run:
            result.aborted.append(u)
            continue
        try:
            abort_upload(client, bucket, u.key, u.upload_id)
        except Exception as exc:  # noqa: BLE001 - reported per upload, the rest go on
            result.failed.append((u, exc))
        else:
            result.aborted.append(u)
    return result


__all__ = ["UploadInfo", "CleanupResult", "abort_upload", "list_uploads", "list_parts", "parts_summary", "cleanup"]
