"""``POST /v1/mint`` with a ``prefix``: online minting of a bundle (SPEC §8), bounded by the API token.

Body: ``{"bucket", "prefix", "objects": [{"path", "size", "part_size"?, "md5s"?}], "expires"?,
"content_type"?, "metadata"?}``; the answer is 201 with a bundle (``s3mpu.bundle/1``) built by
:func:`s3mpu.admin.mint_bundle.mint_bundle`, the same core as ``s3mpu mint --plan``.

Why every object is judged before anything is created: a bundle request is many single mints
at once, and each must be as strictly bounded as one (path and key rules, the token's prefix
and size per file), plus the token's bounds on the whole (``max_files``, ``max_total_size``,
``max_uploads``). A refusal names the file (``objects[i]`` and its path) and creates nothing;
a failure once uploads exist aborts them all (the core does), so no partial grant is left.

``part_size`` per object is an addition to SPEC §8's body: a plan's MD5s are per part of the
plan's part size, so the relay must cut the file the same way (default: the automatic size).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from s3mpu.admin.mint_bundle import BundleFile, BundleRequest, abort_all, mint_bundle
from s3mpu.bundle import MAX_OBJECTS, key_for, key_problem, path_problem
from s3mpu.errors import AccessDeniedError, S3mpuError, UsageError
from s3mpu.layout import auto_part_size, check_part_size, part_count
from s3mpu.relay.inputs import expires as parse_expires
from s3mpu.relay.inputs import is_utf8
from s3mpu.units import format_duration

log = logging.getLogger("s3mpu.relay")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
#: printable ASCII: what a header value may safely hold (Content-Type, x-amz-meta-*)
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
_META_KEY = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}")
_OBJECT_FIELDS = frozenset({"path", "size", "part_size", "md5s"})
_BODY_FIELDS = frozenset({"bucket", "prefix", "objects", "expires", "content_type", "metadata"})
MAX_METADATA_BYTES = 2048  # S3's limit on user metadata
#: files in one bundle for a token without ``max_files``: each costs a presign (~0.35 ms) and ~700 bytes of answer
DEFAULT_MAX_FILES = 10_000


def is_bundle_request(body: Any) -> bool:
    """A ``/v1/mint`` body asks for a bundle when it names a prefix (a single mint names a key)."""
    return isinstance(body, Mapping) and "prefix" in body


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def parse_objects(body: Mapping[str, Any], policy: Any) -> tuple[str, str, list[BundleFile]]:
    """``(bucket, prefix, files)`` from the body, every object checked against the rules and the policy."""
    unknown = set(body) - _BODY_FIELDS
    if unknown:
        raise UsageError(f"unknown field(s) {', '.join(sorted(_short(k) for k in unknown))} in a bundle mint",
                         'A bundle mint takes "bucket", "prefix", "objects", "expires", "content_type", "metadata".')
    bucket, prefix, objects = body.get("bucket"), body.get("prefix"), body.get("objects")
    if not isinstance(bucket, str) or not bucket or not is_utf8(bucket) or len(bucket) > 255:
        raise UsageError('"bucket" must be a bucket name')
    if not isinstance(prefix, str) or not is_utf8(prefix) or (prefix and not prefix.endswith("/")):
        raise UsageError('"prefix" must be a string ending in "/" (or empty)')
    if prefix and path_problem(prefix[:-1]):
        raise AccessDeniedError(f"the prefix {_short(prefix)} {path_problem(prefix[:-1])}",
                                "Name the prefix without empty, '.' or '..' segments.")
    if not isinstance(objects, list) or not objects:
        raise UsageError('"objects" must be a non-empty list of {"path", "size", "md5s"?}')
    limit = min(MAX_OBJECTS, policy.max_files if policy.max_files is not None else DEFAULT_MAX_FILES)
    if len(objects) > limit:
        raise AccessDeniedError(f"API token {policy.name!r} may mint at most {limit} file(s) in one bundle, "
                                f"not {len(objects)}", "Split the folder, or ask the relay's admin for a token "
                                "with a larger max_files.")
    files: list[BundleFile] = []
    seen: set[str] = set()
    total = 0
    for i, o in enumerate(objects):
        f = _object(i, o, bucket, prefix, policy)
        if f.path in seen:
            raise UsageError(f"objects[{i}].path {_short(f.path)} is listed twice")
        seen.add(f.path)
        total += f.size
        files.append(f)
    if policy.max_total_size is not None and total > policy.max_total_size:
        raise AccessDeniedError(f"API token {policy.name!r} may mint at most {policy.max_total_size} bytes in one "
                                f"bundle, not {total}", "Split the folder, or ask for a token with a larger "
                                "max_total_size.")
    return bucket, prefix, files


def _object(i: int, o: Any, bucket: str, prefix: str, policy: Any) -> BundleFile:
    where = f"objects[{i}]"
    if not isinstance(o, dict):
        raise UsageError(f'{where} must be an object {{"path", "size", "md5s"?}}')
    unknown = set(o) - _OBJECT_FIELDS
    if unknown:
        raise UsageError(f"{where}: unknown field(s) {', '.join(sorted(_short(k) for k in unknown))}")
    path = o.get("path")
    why = path_problem(path)
    if why:
        raise UsageError(f"{where}.path {_short(path)} {why}", "Paths are relative, '/'-separated, UTF-8.")
    assert isinstance(path, str)
    name = f"{where} {_short(path)}"
    key = key_for(prefix, path)
    why = key_problem(key)
    if why:
        raise UsageError(f"{name}: its key {why}", "Choose a shorter prefix or path.")
    if not policy.allows_key(bucket, key):
        raise AccessDeniedError(f"API token {policy.name!r} may not mint {name} as s3://{bucket}/{key[:200]}",
                                f"It is limited to s3://{policy.bucket}/{policy.prefix}*: choose a prefix there.")
    size, part_size = o.get("size"), o.get("part_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise UsageError(f"{name}: \"size\" must be a whole number of bytes")
    if part_size is not None and (isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1):
        raise UsageError(f"{name}: \"part_size\" must be a positive whole number of bytes")
    if policy.max_size is not None and size > policy.max_size:
        raise AccessDeniedError(f"API token {policy.name!r} may mint at most {policy.max_size} bytes a file; {name} "
                                f"is {size}", "Ask the relay's admin for an API token that allows a larger size.")
    part_size = part_size or auto_part_size(size)
    try:
        check_part_size(size, part_size)
    except S3mpuError as exc:
        raise UsageError(f"{name}: {exc.message}", exc.hint) from None
    md5s = o.get("md5s")
    if md5s is not None:
        n = part_count(size, part_size)
        if not isinstance(md5s, list) or len(md5s) != n or not all(
                isinstance(h, str) and _HEX32.fullmatch(h) for h in md5s):
            raise UsageError(f"{name}: \"md5s\" must be a list of {n} hex MD5s, one per part of {part_size} bytes")
        md5s = [h.lower() for h in md5s]
    return BundleFile(path, size, part_size, md5s)


def _headers(body: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    """Content type and metadata, refused unless they are safe header values (printable ASCII)."""
    ctype = body.get("content_type")
    if ctype is not None and (not isinstance(ctype, str) or not ctype or len(ctype) > 256
                              or not _HEADER_VALUE.fullmatch(ctype)):
        raise UsageError('"content_type" must be a media type of printable ASCII (e.g. "image/jpeg")')
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict) or not all(
            isinstance(k, str) and _META_KEY.fullmatch(k) and isinstance(v, str) and _HEADER_VALUE.fullmatch(v)
            for k, v in meta.items()):
        raise UsageError('"metadata" must be an object of header-safe names and printable ASCII values')
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_METADATA_BYTES - 100:
        raise UsageError(f'"metadata" is over S3\'s {MAX_METADATA_BYTES}-byte limit (with s3mpu\'s own)')
    return ctype, dict(meta)


def mint_bundle_request(service: Any, body: Mapping[str, Any], bearer: str | None,
                        relay_url: str) -> tuple[int, dict[str, Any]]:
    """Check the token and every object, count uploads in progress, mint (all or nothing), answer 201."""
    from s3mpu.relay.config import LimitError, find_api_token
    from s3mpu.relay.events import note
    from s3mpu.relay.service import upstream

    config = service.config
    if not config.api_tokens:
        raise AccessDeniedError("online minting is not enabled on this relay",
                                "The relay's admin enables it with s3mpu relay --tokens FILE.")
    policy = find_api_token(config.api_tokens, bearer)
    note(who=policy.name)  # a refusal below is audited under the token's name
    bucket, prefix, files = parse_objects(body, policy)
    ctype, meta = _headers(body)
    now = datetime.fromtimestamp(config.clock(), timezone.utc)
    expires = parse_expires(body.get("expires"), now) or now + timedelta(seconds=min(policy.max_expires, 7 * 86400))
    if (expires - now).total_seconds() > policy.max_expires + 1:
        raise AccessDeniedError(f"API token {policy.name!r} allows an expiry of at most "
                                f"{format_duration(policy.max_expires)}", "Ask for less, or leave expires out.")
    secret = config.all_secrets[0] if config.all_secrets else None
    multipart = sum(1 for f in files if f.size > f.part_size)
    client = config.s3()
    in_progress = _count_uploads(client, policy, upstream)
    if policy.max_uploads is not None and in_progress + multipart > policy.max_uploads:
        raise LimitError(f"API token {policy.name!r} may have at most {policy.max_uploads} upload(s) in progress under "
                         f"s3://{policy.bucket}/{policy.prefix}; {in_progress} already are and this bundle needs "
                         f"{multipart}", "Complete or abort some (or send fewer large files), then mint again.")
    req = BundleRequest(bucket=bucket, prefix=prefix, files=files, expires=expires, content_type=ctype,
                        metadata=meta, relay_url=(config.public_url or relay_url) if secret else None,
                        policy=policy.name, policy_max_expires=policy.max_expires)
    with upstream("minting the bundle"):
        b = mint_bundle(client, req, endpoint=config.endpoint(), region=config.region(), relay_secret=secret,
                        signature_version=config.settings.signature_version, now=now)
    created = [o.manifest for o in b.objects if o.manifest is not None]
    if policy.max_uploads is not None and created:  # racing mints on other relays: count again, S3 is the truth
        after = _count_uploads(client, policy, upstream)
        if after > policy.max_uploads:
            abort_all(client, created)
            raise LimitError(f"API token {policy.name!r} may have at most {policy.max_uploads} upload(s) in progress; "
                             f"another mint took the room this bundle needed", "Mint again in a moment.")
    log.info("minted bundle s3://%s/%s id=%s objects=%d multipart=%d size=%d for api token %s", bucket, prefix,
             b.id, len(b.objects), len(created), b.total_size, policy.name)
    for m in created:  # audit, metrics and upload.minted webhooks, as for a single /v1/mint; single PUTs have
        service.events.minted(bucket=m.bucket, key=m.key, upload_id=m.upload_id, size=m.size,  # no upload
                              who=policy.name, bundle=b.id)
    return 201, b.to_dict()


def _count_uploads(client: Any, policy: Any, upstream: Any) -> int:
    if policy.max_uploads is None:
        return 0
    from s3mpu.admin.housekeeping import list_uploads

    with upstream("counting uploads in progress"):
        return len(list_uploads(client, policy.bucket, policy.prefix, with_parts=False))


__all__ = ["is_bundle_request", "mint_bundle_request", "parse_objects", "DEFAULT_MAX_FILES"]
