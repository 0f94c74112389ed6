"""Minting a bundle (admin side, and the relay's ``/v1/mint`` with a prefix): one grant for a folder.

Every file of a directory plan becomes the object ``PREFIX + path``. A file of at most one part
gets a single presigned PUT: its Content-Length is signed (S3 refuses another length), and its
Content-MD5 when the plan hashed it (S3 refuses other bytes); the object appears atomically, so
nothing is created now and nothing needs completing. A larger file gets a multipart upload minted
by :func:`s3mpu.admin.mint.mint`, exactly as a single manifest (its own part URLs and relay
token), so its upload runs through the single-file pipeline.

Why all-or-nothing: a bundle is handed over whole. If any CreateMultipartUpload or presign
fails, every upload this call already created is aborted before the error is raised, so a
failed mint leaves no orphan uploads (which would also count against a token's ``max_uploads``).
CreateMultipartUpload calls run on a thread pool: over a WAN each is a round trip.

Which headers a single PUT must carry: whatever its URL signed besides Content-Length and
Content-MD5 (Content-Type, ``x-amz-acl``, ``x-amz-storage-class``, ``x-amz-meta-*``). They are
read back from the URL's ``X-Amz-SignedHeaders`` (SigV4), never assumed, and recorded in
:attr:`s3mpu.bundle.BundleObject.headers`; a signed header this module cannot give a value for
is an internal error, not a URL the user cannot use.
"""
from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from s3mpu.admin.mint import MintRequest, expires_in, mint
from s3mpu.admin.presign import b64_md5
from s3mpu.bundle import Bundle, BundleObject, MAX_OBJECTS, key_for, key_problem, path_problem
from s3mpu.errors import DataError, S3mpuError, UsageError
from s3mpu.layout import check_part_size
from s3mpu.manifest import Manifest
from s3mpu.s3errors import classify_boto
from s3mpu.units import utc_iso

#: CreateMultipartUpload calls in flight at once
DEFAULT_JOBS = 16
#: headers a single PUT sends anyway (from the file): never listed in ``BundleObject.headers``
_OWN = frozenset({"host", "content-length", "content-md5"})


@dataclass(frozen=True)
class BundleFile:
    """One file to grant: its path relative to the folder, size, part size and (optionally) plan hashes."""

    path: str
    size: int
    part_size: int
    md5s: Sequence[str] | None = None
    sha256: str | None = None


@dataclass
class BundleRequest:
    """What the admin (or a relay's API token) asks for; the options apply to every object."""

    bucket: str
    prefix: str  # "" or ending in "/"
    files: Sequence[BundleFile]
    expires: datetime | None = None
    content_type: str | None = None  # None: guessed per file from its name
    metadata: Mapping[str, str] = field(default_factory=dict)
    acl: str | None = None
    storage_class: str | None = None
    relay_url: str | None = None
    policy: str | None = None
    policy_max_expires: int | None = None


def files_from_plan(plan: Any) -> list[BundleFile]:
    """The files of a :class:`s3mpu.plan_dir.DirPlan`."""
    return [BundleFile(f.path, f.size, f.part_size, f.md5s, f.sha256) for f in plan.files]


def check_request(req: BundleRequest) -> None:
    """Refuse, before anything is created, a prefix or file S3 or the bundle format would refuse."""
    if req.prefix and (not req.prefix.endswith("/") or path_problem(req.prefix[:-1])):
        why = path_problem(req.prefix[:-1]) if req.prefix.endswith("/") else "does not end in '/'"
        raise UsageError(f"prefix {req.prefix!r} {why}", "Name the prefix as s3://BUCKET/PREFIX/ (ending in '/').")
    if not req.files:
        raise DataError("the plan names no files", "Plan a folder that holds files: s3mpu plan DIR -o PLAN")
    if len(req.files) > MAX_OBJECTS:
        raise DataError(f"{len(req.files)} files; a bundle holds at most {MAX_OBJECTS}")
    seen: set[str] = set()
    for f in req.files:
        why = path_problem(f.path)
        if why:
            raise DataError(f"cannot mint {f.path!r}: the path {why}", "Make a fresh plan with: s3mpu plan DIR")
        if f.path in seen:
            raise DataError(f"cannot mint {f.path!r}: it is listed twice")
        seen.add(f.path)
        why = key_problem(key_for(req.prefix, f.path))
        if why:
            raise DataError(f"cannot mint {f.path!r}: its key {req.prefix}{f.path[:40]}... {why}",
                            "Choose a shorter prefix, or leave the file out of the plan.")
        try:
            check_part_size(f.size, f.part_size)
        except S3mpuError as exc:
            raise DataError(f"cannot mint {f.path!r}: {exc.message}", exc.hint) from None
        if f.md5s is not None and len(f.md5s) != max(1, -(-f.size // f.part_size)):
            raise DataError(f"cannot mint {f.path!r}: {len(f.md5s)} MD5s do not fit its layout")


def mint_bundle(client: Any, req: BundleRequest, *, endpoint: str, region: str, relay_secret: str | None = None,
                signature_version: str = "s3v4", now: datetime | None = None, jobs: int = DEFAULT_JOBS,
                bundle_id: str | None = None) -> Bundle:
    """Presign every file of ``req`` and return the bundle; on any failure, abort what was created and raise."""
    now = now or datetime.now(timezone.utc)
    check_request(req)
    seconds, expires = expires_in(req.expires, signature_version, now)
    if req.relay_url and not relay_secret:
        raise UsageError("--relay needs the relay secret to sign the multipart objects' tokens",
                         "Set S3MPU_RELAY_SECRET or relay_secret_file in the [s3mpu] section of the config.")
    req.expires = expires  # every object expires at the same moment
    big = [i for i, f in enumerate(req.files) if f.size > f.part_size]
    manifests: dict[int, Manifest] = {}
    if big:
        manifests = _mint_multipart(client, req, big, endpoint=endpoint, region=region, relay_secret=relay_secret,
                                    signature_version=signature_version, now=now, jobs=jobs)
    try:
        objects = tuple(_object(client, req, i, f, manifests.get(i), seconds, signature_version)
                        for i, f in enumerate(req.files))
    except BaseException:
        abort_all(client, list(manifests.values()))
        raise
    return Bundle(id=bundle_id or secrets.token_hex(16), endpoint=endpoint, region=region, bucket=req.bucket,
                  prefix=req.prefix, created_at=utc_iso(now), expires_at=utc_iso(expires), objects=objects,
                  relay_url=req.relay_url, signature_version=signature_version)


def content_type_of(req: BundleRequest, path: str) -> str | None:
    return req.content_type or mimetypes.guess_type(path, strict=False)[0]


def _metadata(req: BundleRequest, f: BundleFile) -> dict[str, str]:
    meta = dict(req.metadata)
    if f.sha256:
        meta.setdefault("s3mpu-sha256", f.sha256)  # as a single mint does: the object can be checked later
    return meta


def _mint_multipart(client: Any, req: BundleRequest, which: list[int], *, endpoint: str, region: str,
                    relay_secret: str | None, signature_version: str, now: datetime, jobs: int) -> dict[int, Manifest]:
    def one(i: int) -> Manifest:
        f = req.files[i]
        mreq = MintRequest(bucket=req.bucket, key=key_for(req.prefix, f.path), size=f.size, part_size=f.part_size,
                           expires=req.expires, content_type=content_type_of(req, f.path),
                           metadata=dict(req.metadata),
                           acl=req.acl, storage_class=req.storage_class, relay_url=req.relay_url,
                           md5s=list(f.md5s) if f.md5s is not None else None, sha256=f.sha256,
                           policy=req.policy, policy_max_expires=req.policy_max_expires)
        return mint(client, mreq, endpoint=endpoint, region=region, relay_secret=relay_secret,
                    signature_version=signature_version, now=now)

    done: dict[int, Manifest] = {}
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max(1, min(jobs, len(which))), thread_name_prefix="s3mpu-mint") as pool:
        futures = {pool.submit(one, i): i for i in which}
        for fut, i in futures.items():  # wait for every call: each created upload must be known to abort it
            try:
                done[i] = fut.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the clean-up
                errors.append(exc)
                for other in futures:
                    other.cancel()
    if errors:
        abort_all(client, list(done.values()))
        raise errors[0]  # mint() already turned S3's errors into S3mpuErrors naming the key
    return done


def abort_all(client: Any, manifests: Sequence[Manifest]) -> None:
    """Best effort: abort every upload of a mint that is being given up (the original error matters more)."""
    from s3mpu.admin.housekeeping import abort_upload

    def one(m: Manifest) -> None:
        try:
            abort_upload(client, m.bucket, m.key, m.upload_id)
        except Exception:  # noqa: BLE001
            pass

    if manifests:
        with ThreadPoolExecutor(min(DEFAULT_JOBS, len(manifests))) as pool:
            list(pool.map(one, manifests))


def _object(client: Any, req: BundleRequest, i: int, f: BundleFile, m: Manifest | None, seconds: int,
            signature_version: str) -> BundleObject:
    key = key_for(req.prefix, f.path)
    ctype = content_type_of(req, f.path)
    if m is not None:
        return BundleObject(path=f.path, key=key, size=f.size, content_type=ctype, manifest=m)
    md5 = f.md5s[0] if f.md5s else None
    wanted: dict[str, str] = {}  # header name (lower case) -> value, for every parameter given
    params: dict[str, Any] = {"Bucket": req.bucket, "Key": key, "ContentLength": f.size}
    if md5:
        params["ContentMD5"] = b64_md5(md5)
    if ctype:
        params["ContentType"] = wanted["content-type"] = ctype
    if req.acl:
        params["ACL"] = wanted["x-amz-acl"] = req.acl
    if req.storage_class:
        params["StorageClass"] = wanted["x-amz-storage-class"] = req.storage_class
    meta = _metadata(req, f)
    if meta:
        params["Metadata"] = meta
        wanted.update({f"x-amz-meta-{k.lower()}": v for k, v in meta.items()})
    try:
        url = str(client.generate_presigned_url("put_object", Params=params, ExpiresIn=seconds))
    except Exception as exc:
        raise classify_boto(exc, f"presigning the PUT of s3://{req.bucket}/{key}") from None
    return BundleObject(path=f.path, key=key, size=f.size, content_type=ctype, url=url, md5=md5,
                        headers=headers_to_send(url, wanted, signature_version))


def headers_to_send(url: str, wanted: Mapping[str, str], signature_version: str) -> dict[str, str]:
    """The headers a client must send with ``url`` (besides Content-Length and Content-MD5).

    SigV4: exactly the signed headers (``X-Amz-SignedHeaders``) other than host/length/MD5; a
    signed header whose value is unknown here is refused. SigV2: every one of them. botocore
    copies them into the query too, but the server builds the string to sign from the request's
    headers (s3rver refuses the PUT without them: tests/e2e/test_bundle_sigv2.py).
    """
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    if signature_version == "s3v4" or "X-Amz-SignedHeaders" in query:
        signed = [h for h in query.get("X-Amz-SignedHeaders", [""])[0].split(";") if h and h not in _OWN]
        unknown = [h for h in signed if h not in wanted]
        if unknown:
            raise DataError(f"the presigned PUT signed header(s) {', '.join(unknown)} that the bundle cannot name",
                            "Report this as a bug in s3mpu.")
        return {h: wanted[h] for h in signed}
    return dict(wanted)


__all__ = ["BundleFile", "BundleRequest", "mint_bundle", "files_from_plan", "check_request", "abort_all",
           "headers_to_send", "content_type_of", "DEFAULT_JOBS"]
