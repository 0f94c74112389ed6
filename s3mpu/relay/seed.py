"""The seed article's form-encoded API (``POST /presign``, ``POST /complete``), kept wire-compatible.

Existing integrations were written against the seed's small Flask server; enabling
``s3mpu relay --seed-api BUCKET`` lets them keep working unchanged while gaining the relay's
checks: each part URL binds that part's Content-MD5 (so S3 refuses other bytes), ``/complete``
verifies the parts with ListParts before completing, and when API tokens are configured the
endpoints require one (bearer header) and apply its policy.
"""
from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from typing import Any

from s3mpu.admin.completion import complete_upload, list_parts
from s3mpu.errors import AccessDeniedError, NoInputError, PartialError, UsageError
from s3mpu.layout import MAX_OBJECT_SIZE, MAX_PARTS, PartSpan
from s3mpu.admin.mint import expires_in
from s3mpu.admin.presign import Presigner
from s3mpu.s3errors import classify_boto
from s3mpu.token import Identity
from s3mpu.relay.config import ApiToken, RelayConfig, find_api_token
from s3mpu.relay.service import RelayService, upstream

log = logging.getLogger("s3mpu.relay")
CANNED_ACLS = {"private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read",
               "bucket-owner-read", "bucket-owner-full-control", "log-delivery-write"}
DEFAULT_EXPIRES = 3600


class SeedApi:
    """``/presign`` and ``/complete`` on the configured seed bucket."""

    def __init__(self, config: RelayConfig, service: RelayService) -> None:
        assert config.seed_bucket
        self.config = config
        self.service = service
        self.bucket = config.seed_bucket

    def _policy(self, bearer: str | None, key: str) -> ApiToken | None:
        if not self.config.api_tokens:
            return None
        policy = find_api_token(self.config.api_tokens, bearer)
        if not policy.allows_key(self.bucket, key):
            raise AccessDeniedError(f"API token {policy.name!r} may not upload s3://{self.bucket}/{key}",
                                    f"It is limited to s3://{policy.bucket}/{policy.prefix}*.")
        return policy

    def presign(self, form: Mapping[str, str], bearer: str | None) -> tuple[int, dict[str, Any]]:
        """Create the upload and one Content-MD5-bound URL per numbered part MD5."""
        key = _keyname(form)
        policy = self._policy(bearer, key)
        seconds = _int(form.get("expires"), "expires", DEFAULT_EXPIRES)
        if policy is not None and seconds > policy.max_expires:
            raise AccessDeniedError(f"API token {policy.name!r} allows URLs valid for at most {policy.max_expires} s")
        from datetime import datetime, timedelta, timezone

        now = datetime.fromtimestamp(self.config.clock(), timezone.utc)
        seconds, _ = expires_in(now + timedelta(seconds=seconds), self.config.settings.signature_version, now)
        md5s = _part_md5s(form)
        lengths = _part_lengths(form, len(md5s))
        if policy is not None and policy.max_size is not None and lengths and sum(lengths) > policy.max_size:
            raise AccessDeniedError(f"{sum(lengths)} bytes is more than API token {policy.name!r}'s limit of "
                                    f"{policy.max_size} bytes")
        if policy is not None and policy.max_size is not None and len(md5s) > 1 and \
                (len(md5s) - 1) * 5 * 1024 * 1024 > policy.max_size:
            raise AccessDeniedError(f"{len(md5s)} parts cannot fit API token {policy.name!r}'s limit of "
                                    f"{policy.max_size} bytes")
        create: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if form.get("contenttype"):
            create["ContentType"] = form["contenttype"]
        acl = form.get("x-amz-acl")
        if acl:
            if acl not in CANNED_ACLS:
                raise UsageError(f"x-amz-acl {acl!r} is not a canned ACL ({', '.join(sorted(CANNED_ACLS))})")
            create["ACL"] = acl
        meta = {k[len("x-amz-meta-"):]: v for k, v in form.items() if k.lower().startswith("x-amz-meta-")}
        if meta:
            create["Metadata"] = meta
        client = self.config.s3()
        if policy is not None:  # the token's max_uploads holds here too (issue 10)
            self.service.check_uploads_limit(client, policy)
        with upstream("creating the upload"):
            try:
                upload_id = client.create_multipart_upload(**create)["UploadId"]
            except Exception as exc:
                raise classify_boto(exc, f"creating the upload of s3://{self.bucket}/{key}") from None
        if policy is not None:
            self.service.check_uploads_limit(client, policy, (self.bucket, key, upload_id))
        try:
            presigner = Presigner(client, self.bucket, key, upload_id, seconds)
            out: dict[str, Any] = {"UploadID": upload_id}
            for n, md5_hex in enumerate(md5s, 1):
                out[str(n)] = presigner.part_url(PartSpan(n, 0, lengths[n - 1] if lengths else 0),
                                                 sign_length=lengths is not None, md5_hex=md5_hex)
        except BaseException:
            from s3mpu.admin.housekeeping import abort_upload

            abort_upload(client, self.bucket, key, upload_id)
            raise
        log.info("seed presign s3://%s/%s upload=%s parts=%d", self.bucket, key, upload_id, len(md5s))
        return 201, out

    def complete(self, form: Mapping[str, str], bearer: str | None) -> tuple[int, dict[str, Any]]:
        """Complete from ListParts after checking the parts are 1..N, equal-sized but the last."""
        key = _keyname(form)
        policy = self._policy(bearer, key)
        upload_id = form.get("uploadid") or ""
        if not upload_id:
            raise UsageError("the form field uploadid is required")
        client = self.config.s3()
        limit = policy.max_size if policy is not None and policy.max_size is not None else MAX_OBJECT_SIZE
        with upstream("completing the upload"):
            try:
                held: list[dict[str, Any]] | None = list_parts(client, self.bucket, key, upload_id)
            except NoInputError:
                held = None  # gone: complete_upload tells "completed already" from "never existed"
            if held == []:
                raise PartialError(f"upload {upload_id} has no parts yet", "Upload the parts, then complete.")
            # The seed's client completes once every part is sent: what ListParts shows (1..N, no gap,
            # equal sizes but the last) is the whole object.
            part_size = held[0]["size"] if held else 1
            count = max(p["number"] for p in held) if held else MAX_PARTS
            identity = Identity(self.config.endpoint(), self.bucket, key, upload_id, limit, True, max(part_size, 1),
                                count, 0)
            result = complete_upload(client, identity, object_size_header=self.config.object_size_header)
        log.info("seed complete s3://%s/%s upload=%s size=%d", self.bucket, key, upload_id, result["size"])
        return 200, {"status_code": 200, "etag": result["etag"], "size": result["size"], "key": key}


def _keyname(form: Mapping[str, str]) -> str:
    key = form.get("keyname") or ""
    if not key:
        raise UsageError("the form field keyname is required")
    if len(key.encode("utf-8")) > 1024:
        raise UsageError("keyname is longer than S3's 1024 bytes")
    return key


def _int(value: str | None, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    if not re.fullmatch(r"\d{1,9}", str(value)):
        raise UsageError(f"{name} must be a number of seconds, not {value!r}")
    return int(str(value))


def _part_md5s(form: Mapping[str, str]) -> list[str]:
    """Hex MD5 of parts 1..N from the numbered form fields (base64, as sent in Content-MD5)."""
    numbered = {int(k): v for k, v in form.items() if re.fullmatch(r"[1-9]\d{0,4}", k)}
    if not numbered:
        raise UsageError('no part MD5s: send one form field per part, "1": "<base64 MD5 of part 1>", ...')
    n = max(numbered)
    if n > MAX_PARTS or sorted(numbered) != list(range(1, n + 1)):
        raise UsageError(f"part MD5 fields must be numbered 1..N without gaps (N <= {MAX_PARTS})")
    out = []
    for i in range(1, n + 1):
        try:
            raw = base64.b64decode(numbered[i], validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 16:
            raise UsageError(f"part {i}: {numbered[i]!r} is not a base64 MD5 (as in a Content-MD5 header)")
        out.append(raw.hex())
    return out


def _part_lengths(form: Mapping[str, str], count: int) -> list[int] | None:
    """Each part's length when the form gives the object's ``size`` and ``partsize`` (bytes), else None.

    Then every part URL signs its Content-Length too, so S3 refuses a part longer than declared
    (the MD5s alone bind the bytes the holder hashed, whatever their length).
    """
    size, partsize = form.get("size") or "", form.get("partsize") or ""
    if not size and not partsize:
        return None
    if not re.fullmatch(r"\d{1,13}", size) or not re.fullmatch(r"\d{1,10}", partsize) or int(partsize) < 1:
        raise UsageError("give both size and partsize as whole numbers of bytes, or neither")
    total, each = int(size), int(partsize)
    if total > MAX_OBJECT_SIZE or max(1, -(-total // each)) != count:
        raise UsageError(f"size {total} in parts of {each} bytes does not match the {count} part MD5s sent")
    return [min(each, total - i * each) for i in range(count)]
