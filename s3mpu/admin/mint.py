"""Minting (admin side): create the multipart upload, presign every part, build the manifest.

The abort is registered the moment the upload exists: if presigning or writing the manifest
fails, the upload is aborted so no orphan parts linger (as s3transfer does).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from s3mpu import token as tokens
from s3mpu.errors import UsageError
from s3mpu.layout import auto_part_size, plan_parts
from s3mpu.manifest import Manifest, Part, Relay
from s3mpu.admin.presign import Presigner, b64_md5
from s3mpu.s3errors import classify_boto
from s3mpu.units import format_duration, utc_iso

SIGV4_MAX_EXPIRES = 7 * 86400
DEFAULT_EXPIRES = 7 * 86400


@dataclass
class MintRequest:
    """What the admin asks for; exactly one of ``size`` and ``max_size`` (or ``md5s`` from a plan)."""

    bucket: str
    key: str
    size: int | None = None
    max_size: int | None = None
    part_size: int | None = None
    expires: datetime | None = None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    acl: str | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    relay_url: str | None = None
    md5s: Sequence[str] | None = None  # hex MD5 of each part, from a plan
    sha256: str | None = None


def expires_in(expires: datetime | None, signature_version: str, now: datetime | None = None) -> tuple[int, datetime]:
    """Seconds from now until ``expires``, refused when SigV4 cannot sign that long."""
    now = now or datetime.now(timezone.utc)
    expires = expires or now + timedelta(seconds=DEFAULT_EXPIRES)
    seconds = int((expires - now).total_seconds())
    if seconds < 1:
        raise UsageError(f"expiry {utc_iso(expires)} is in the past", "Use e.g. --expires 7d or --expires 12h.")
    if signature_version == "s3v4" and seconds > SIGV4_MAX_EXPIRES:
        raise UsageError(
            f"--expires {format_duration(seconds)} is beyond SigV4's 7-day limit for presigned URLs",
            "Use --expires 7d or less (hand over a refreshed manifest later with s3mpu mint --refresh).")
    return seconds, expires


def _layout(req: MintRequest) -> tuple[int, bool, int]:
    if (req.size is None) == (req.max_size is None):
        raise UsageError("give exactly one of --size, --max-size or --plan")
    size = req.size if req.size is not None else req.max_size
    assert size is not None
    part_size = req.part_size or auto_part_size(size)
    return size, req.max_size is not None, part_size


def mint(client: Any, req: MintRequest, *, endpoint: str, region: str, relay_secret: str | None = None,
         signature_version: str = "s3v4", now: datetime | None = None) -> Manifest:
    """Create the upload and return its manifest; aborts the upload again if anything fails."""
    now = now or datetime.now(timezone.utc)
    size, is_max, part_size = _layout(req)
    spans = plan_parts(size, part_size)
    if req.md5s is not None and len(req.md5s) != len(spans):
        raise UsageError(f"plan has {len(req.md5s)} part MD5s but the layout has {len(spans)} parts")
    seconds, expires = expires_in(req.expires, signature_version, now)
    if req.relay_url and not relay_secret:
        raise UsageError("--relay needs the relay secret to sign the manifest's token",
                         "Set S3MPU_RELAY_SECRET or relay_secret_file in the [s3mpu] section of the config.")
    create: dict[str, Any] = {"Bucket": req.bucket, "Key": req.key}
    if req.content_type:
        create["ContentType"] = req.content_type
    metadata = dict(req.metadata)
    if req.sha256:
        metadata.setdefault("s3mpu-sha256", req.sha256)
    if metadata:
        create["Metadata"] = metadata
    if req.acl:
        create["ACL"] = req.acl
    try:
        upload_id = client.create_multipart_upload(**create)["UploadId"]
    except Exception as exc:
        raise classify_boto(exc, f"creating the upload of s3://{req.bucket}/{req.key}") from None
    try:
        return _build(client, req, upload_id, spans, size, is_max, part_size, seconds, expires, now,
                      endpoint=endpoint, region=region, relay_secret=relay_secret,
                      signature_version=signature_version, metadata=metadata)
    except BaseException:
        try:
            client.abort_multipart_upload(Bucket=req.bucket, Key=req.key, UploadId=upload_id)
        except Exception:  # noqa: BLE001 - best effort; the original error matters more
            pass
        raise


def _build(client: Any, req: MintRequest, upload_id: str, spans: list[Any], size: int, is_max: bool, part_size: int,
           seconds: int, expires: datetime, now: datetime, *, endpoint: str, region: str, relay_secret: str | None,
           signature_version: str, metadata: dict[str, str]) -> Manifest:
    presigner = Presigner(client, req.bucket, req.key, upload_id, seconds)
    urls = presigner.part_urls(spans, sign_length=not is_max, md5s=req.md5s)
    parts = tuple(Part(s.number, s.offset, s.size, u, req.md5s[i] if req.md5s else None)
                  for i, (s, u) in enumerate(zip(spans, urls, strict=True)))
    m = Manifest(endpoint=endpoint, region=region, bucket=req.bucket, key=req.key, upload_id=upload_id, size=size,
                 size_is_max=is_max, part_size=part_size, created_at=utc_iso(now), expires_at=utc_iso(expires),
                 parts=parts, content_type=req.content_type, relay=None,
                 list_parts_url=presigner.list_parts_url(), abort_url=presigner.abort_url(), metadata=metadata,
                 list_parts_pages=tuple(presigner.list_parts_pages(len(parts))),
                 signature_version=signature_version, sha256=req.sha256)
    if req.relay_url:
        assert relay_secret
        m = m.with_updates(relay=Relay(req.relay_url, tokens.sign(tokens.Identity.from_manifest(m), relay_secret)))
    return m


def refresh(client: Any, old: Manifest, *, expires: datetime | None = None, relay_secret: str | None = None,
            relay_url: str | None = None, now: datetime | None = None) -> Manifest:
    """Re-sign the same upload (same upload id and layout) with a new expiry."""
    now = now or datetime.now(timezone.utc)
    seconds, new_expires = expires_in(expires, old.signature_version, now)
    presigner = Presigner(client, old.bucket, old.key, old.upload_id, seconds)
    spans = [_span(p) for p in old.parts]
    urls = presigner.part_urls(spans, sign_length=not old.size_is_max, md5s=[p.md5 for p in old.parts]
                               if any(p.md5 for p in old.parts) else None)
    parts = tuple(Part(p.number, p.offset, p.size, u, p.md5) for p, u in zip(old.parts, urls, strict=True))
    m = old.with_updates(parts=parts, expires_at=utc_iso(new_expires), list_parts_url=presigner.list_parts_url(),
                         list_parts_pages=tuple(presigner.list_parts_pages(len(parts))),
                         abort_url=presigner.abort_url())
    url = relay_url or (old.relay.url if old.relay else None)
    if url and relay_secret:
        m = m.with_updates(relay=Relay(url, tokens.sign(tokens.Identity.from_manifest(m), relay_secret)))
    elif url:
        m = m.with_updates(relay=Relay(url, None))
    return m


def _span(p: Part) -> Any:
    from s3mpu.layout import PartSpan

    return PartSpan(p.number, p.offset, p.size)


__all__ = ["MintRequest", "mint", "refresh", "expires_in", "b64_md5"]
