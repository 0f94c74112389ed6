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
from s3mpu.errors import AccessDeniedError, DataError, UsageError
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
    storage_class: str | None = None  # e.g. STANDARD_IA, GLACIER_IR (x-amz-storage-class)
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    relay_url: str | None = None
    md5s: Sequence[str] | None = None  # hex MD5 of each part, from a plan
    sha256: str | None = None
    #: the API token (policy) a relay mints under, and its expiry cap: carried in the relay token
    #: so /v1/refresh cannot grant more than the policy did
    policy: str | None = None
    policy_max_expires: int | None = None


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


def binds_length(size_is_max: bool, relay_url: str | None) -> bool:
    """Whether part URLs sign their Content-Length (SPEC §5).

    Exact-size parts always do. A max-size manifest with a relay signs every URL for a full part
    (the last, shorter part's URL comes from the relay's /v1/tail once its length is known), so
    its holder can store no more than the maximum; without a relay nobody could sign that last
    URL later, so a max-size manifest keeps unbound URLs (``info`` says so).
    """
    return not size_is_max or bool(relay_url)


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
    if req.storage_class:
        create["StorageClass"] = req.storage_class
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
    urls = presigner.part_urls(spans, sign_length=binds_length(is_max, req.relay_url), md5s=req.md5s)
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
        ident = tokens.Identity.from_manifest(m, policy=req.policy, policy_max_expires=req.policy_max_expires)
        m = m.with_updates(relay=Relay(req.relay_url, tokens.sign(ident, relay_secret)))
    return m


def refresh(client: Any, old: Manifest, *, expires: datetime | None = None, relay_secret: str | None = None,
            relay_url: str | None = None, now: datetime | None = None, policy: str | None = None,
            policy_max_expires: int | None = None) -> Manifest:
    """Re-sign the same upload (same upload id and layout) with a new expiry.

    Every binding of the old URLs is kept: Content-Length (exact size, or a full part for a
    max-size manifest with a relay) and the plan's Content-MD5s. When the old manifest carries
    a relay token this secret can verify, the manifest must agree with it (layout and MD5 list),
    so an edited manifest cannot be refreshed into a wider grant.
    """
    now = now or datetime.now(timezone.utc)
    _check_against_token(old, relay_secret)
    seconds, new_expires = expires_in(expires, old.signature_version, now)
    presigner = Presigner(client, old.bucket, old.key, old.upload_id, seconds)
    spans = [_span(p) for p in old.parts]
    url = relay_url or (old.relay.url if old.relay else None)
    urls = presigner.part_urls(spans, sign_length=binds_length(old.size_is_max, url), md5s=[p.md5 for p in old.parts]
                               if any(p.md5 for p in old.parts) else None)
    parts = tuple(Part(p.number, p.offset, p.size, u, p.md5) for p, u in zip(old.parts, urls, strict=True))
    m = old.with_updates(parts=parts, expires_at=utc_iso(new_expires), list_parts_url=presigner.list_parts_url(),
                         list_parts_pages=tuple(presigner.list_parts_pages(len(parts))),
                         abort_url=presigner.abort_url())
    if url and relay_secret:
        ident = tokens.Identity.from_manifest(m, policy=policy, policy_max_expires=policy_max_expires)
        m = m.with_updates(relay=Relay(url, tokens.sign(ident, relay_secret)))
    elif url:
        m = m.with_updates(relay=Relay(url, None))
    return m


def _check_against_token(m: Manifest, relay_secret: str | None) -> None:
    """Refuse to refresh a manifest whose layout or MD5 list differs from what its own token vouches for."""
    if not (relay_secret and m.relay and m.relay.token):
        return
    try:
        ident = tokens.verify(m.relay.token, [relay_secret], now=0)
    except AccessDeniedError:
        return  # minted under another secret (or no token at all): nothing to compare with
    if ident.layout() != tokens.Identity.from_manifest(m).layout():
        raise DataError("the manifest's upload or layout differs from what its relay token was minted for",
                        "Refresh the manifest exactly as it was minted (or mint a new one).")
    if ident.md5s_sha256 is not None and ident.md5s_sha256 != tokens.md5s_digest([p.md5 for p in m.parts]):
        raise DataError("the manifest's part MD5s differ from the plan it was minted with",
                        "Refresh the manifest exactly as it was minted (or mint a new one from the plan).")


def _span(p: Part) -> Any:
    from s3mpu.layout import PartSpan

    return PartSpan(p.number, p.offset, p.size)


__all__ = ["MintRequest", "mint", "refresh", "expires_in", "b64_md5", "binds_length"]
