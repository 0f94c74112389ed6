"""The seed article's form-encoded API (``POST /presign``, ``POST /complete``), kept wire-compatible.

Existing integrations were written against the seed's small Flask server; enabling
``s3mpu relay --seed-api BUCKET`` lets them keep working unchanged while gaining the relay's
checks: each part URL binds that part's Content-MD5 (so S3 refuses other bytes), ``/complete``
verifies the parts with ListParts before completing, and when API tokens are configured the
endpoints require one (bearer header) and apply its policy.

Safe by default: without API tokens it serves only with ``seed_open`` and a ``seed_prefix``
(prepended to every form ``keyname``), sets no canned ACL but ``private`` unless allowed, and
can refuse to overwrite. The ``UploadID`` it hands out is a *ticket*: the S3 upload id plus an
HMAC (relay secret) over it, the key, the part count and a digest of the part MD5s, so
``/complete`` finishes only uploads ``/presign`` created, exactly as presigned (every part,
with those bytes), and answers 404 for anything else before asking S3 anything.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

from s3mpu.admin.completion import complete_upload, list_parts
from s3mpu.errors import AccessDeniedError, DataError, NoInputError, PartialError, UsageError
from s3mpu.layout import MAX_OBJECT_SIZE, MAX_PARTS, PartSpan
from s3mpu.admin.mint import expires_in
from s3mpu.admin.presign import Presigner
from s3mpu.s3errors import classify_boto
from s3mpu.token import Identity
from s3mpu.relay.config import ApiToken, RelayConfig, find_api_token
from s3mpu.relay.config import CANNED_ACLS
from s3mpu.relay import s3watch
from s3mpu.relay.events import note
from s3mpu.relay.inputs import refuse_dot_segments
from s3mpu.relay.service import ConflictError, RelayService, upstream

log = logging.getLogger("s3mpu.relay")
DEFAULT_EXPIRES = 3600
_TICKET = "s3mpu-seed1"
_NOT_FOUND = ("no such upload", "Complete with the keyname and the UploadID that /presign returned.")
_CONDITIONAL = threading.local()  # set while this thread completes an upload that may not overwrite


def _if_none_match(params: dict[str, Any], **_kw: Any) -> None:
    """botocore hook: ``If-None-Match: *`` on this thread's CompleteMultipartUpload (no-overwrite policy).

    Servers that support it (AWS, moto) refuse atomically with 412 when the key exists; servers
    that ignore it (rclone) are covered by the HEAD check just before."""
    if getattr(_CONDITIONAL, "on", False):
        params["IfNoneMatch"] = "*"


class SeedApi:
    """``/presign`` and ``/complete`` on the configured seed bucket."""

    def __init__(self, config: RelayConfig, service: RelayService) -> None:
        assert config.seed_bucket
        config.validate()
        self.config = config
        self.service = service
        self.bucket = config.seed_bucket

    def _policy(self, bearer: str | None, key: str) -> ApiToken | None:
        note(who="seed", bucket=self.bucket, key=key)
        if not self.config.api_tokens:
            if not (self.config.seed_open and self.config.seed_prefix):  # validate() refuses this at start-up
                raise AccessDeniedError("the seed API is not open on this relay")
            return None
        policy = find_api_token(self.config.api_tokens, bearer)
        note(who=policy.name)
        if not policy.allows_key(self.bucket, key):
            raise AccessDeniedError(f"API token {policy.name!r} may not upload s3://{self.bucket}/{key}",
                                    f"It is limited to s3://{policy.bucket}/{policy.prefix}*.")
        return policy

    def presign(self, form: Mapping[str, str], bearer: str | None) -> tuple[int, dict[str, Any]]:
        """Create the upload and one Content-MD5-bound URL per numbered part MD5."""
        key = self._key(form)
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
                raise UsageError(f"x-amz-acl {acl[:40]!r} is not a canned ACL ({', '.join(sorted(CANNED_ACLS))})")
            allowed = set(self.config.seed_acls) | set(policy.acls if policy is not None else ())
            if acl != "private" and acl not in allowed:  # "private" is every new object's ACL anyway: not sent
                raise AccessDeniedError(f"x-amz-acl {acl} is not allowed on this relay",
                                        "Leave x-amz-acl out, or ask the relay's admin to allow it (--seed-acl).")
            if acl != "private":
                create["ACL"] = acl
        meta = {k[len("x-amz-meta-"):]: v for k, v in form.items() if k.lower().startswith("x-amz-meta-")}
        if meta:
            create["Metadata"] = meta
        client = self.config.s3()
        if self._no_overwrite(policy):
            self._refuse_existing(client, key)
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
            ticket = self._ticket(key, upload_id, md5s, int(now.timestamp()) + seconds,
                                  policy.name if policy is not None else "")
            out: dict[str, Any] = {"UploadID": ticket}
            for n, md5_hex in enumerate(md5s, 1):
                out[str(n)] = presigner.part_url(PartSpan(n, 0, lengths[n - 1] if lengths else 0),
                                                 sign_length=lengths is not None, md5_hex=md5_hex)
        except BaseException:
            from s3mpu.admin.housekeeping import abort_upload

            abort_upload(client, self.bucket, key, upload_id)
            raise
        log.info("seed presign s3://%s/%s upload=%s parts=%d", self.bucket, key, upload_id, len(md5s))
        self.service.events.minted(bucket=self.bucket, key=key, upload_id=upload_id, size=None,
                                   who=policy.name if policy is not None else "seed", api="seed")
        return 201, out

    def complete(self, form: Mapping[str, str], bearer: str | None) -> tuple[int, dict[str, Any]]:
        """Complete an upload /presign created: every presigned part there with its MD5, nothing else."""
        key = self._key(form)
        policy = self._policy(bearer, key)
        ticket = form.get("uploadid") or ""
        if not ticket:
            raise UsageError("the form field uploadid is required")
        upload_id, count, digest, policy_name = self._check_ticket(key, ticket)
        if policy is not None and policy.name != policy_name:
            raise NoInputError(*_NOT_FOUND)  # another token's upload: as good as not there
        client = self.config.s3()
        limit = policy.max_size if policy is not None and policy.max_size is not None else MAX_OBJECT_SIZE
        with upstream("completing the upload"):
            try:
                held: list[dict[str, Any]] | None = list_parts(client, self.bucket, key, upload_id)
            except NoInputError:
                held = None  # gone: complete_upload tells "completed already" from "never existed"
            parts = None
            if held is not None:
                parts = _exact_parts(held, count, digest)
                if self._no_overwrite(policy):
                    self._refuse_existing(client, key)
            part_size = max(held[0]["size"], 1) if held else 1
            identity = Identity(self.config.endpoint(), self.bucket, key, upload_id, limit, True, part_size,
                                count, 0)
            conditional = self._no_overwrite(policy)
            if conditional:
                client.meta.events.register("before-parameter-build.s3.CompleteMultipartUpload", _if_none_match,
                                            unique_id="s3mpu-seed-if-none-match")
            _CONDITIONAL.on = conditional
            try:
                with s3watch.recording() as calls:
                    result = complete_upload(client, identity, parts,
                                             object_size_header=self.config.object_size_header)
            except DataError as exc:
                if conditional and "PreconditionFailed" in exc.message:
                    raise _Exists(f"s3://{self.bucket}/{key} exists and this relay may not overwrite it",
                                  "Pick another keyname.") from None
                raise
            finally:
                _CONDITIONAL.on = False
        log.info("seed complete s3://%s/%s upload=%s size=%d", self.bucket, key, upload_id, result["size"])
        s3watch.report_completed(self.service.events, client, calls, self.bucket, key, upload_id, result,
                                 policy.name if policy is not None else "seed")
        return 200, {"status_code": 200, "etag": result["etag"], "size": result["size"], "key": key}

    # -- helpers -------------------------------------------------------------------------------
    def _key(self, form: Mapping[str, str]) -> str:
        key = self.config.seed_prefix + _keyname(form)
        if len(key.encode("utf-8", "surrogatepass")) > 1024:
            raise UsageError("keyname is longer than S3's 1024 bytes (with the relay's prefix)")
        refuse_dot_segments(key)
        return key

    def _no_overwrite(self, policy: ApiToken | None) -> bool:
        return self.config.seed_no_overwrite or (policy is not None and policy.no_overwrite)

    def _refuse_existing(self, client: Any, key: str) -> None:
        """HEAD check for the no-overwrite policy (409); a race between two uploads of one key remains."""
        try:
            client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - classified below
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return
            raise classify_boto(exc, f"checking s3://{self.bucket}/{key}") from None
        raise _Exists(f"s3://{self.bucket}/{key} exists and this relay may not overwrite it",
                      "Pick another keyname.")

    def _ticket(self, key: str, upload_id: str, md5s: list[str], expires: int, policy: str) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(
            {"u": upload_id, "n": len(md5s), "d": _digest(md5s), "e": expires, "p": policy},
            separators=(",", ":")).encode()).rstrip(b"=").decode()
        mac = _mac(self.config.all_secrets[0], payload, key)
        return f"{_TICKET}.{payload}.{mac}"

    def _check_ticket(self, key: str, ticket: str) -> tuple[str, int, str, str]:
        """``(upload id, part count, MD5 digest, policy name)`` from a ticket this relay signed for ``key``."""
        try:
            prefix, payload, mac = ticket.split(".")
            if prefix != _TICKET or len(ticket) > 4096:
                raise ValueError(prefix)
            if not any(hmac.compare_digest(_mac(s, payload, key), mac) for s in self.config.all_secrets if s):
                raise ValueError("mac")
            if not re.fullmatch(r"[A-Za-z0-9_-]+", payload):
                raise ValueError("payload")
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            upload_id, count, digest, expires, policy = data["u"], data["n"], data["d"], data["e"], data["p"]
            if not (isinstance(upload_id, str) and isinstance(count, int) and isinstance(digest, str)
                    and isinstance(expires, int) and isinstance(policy, str)):
                raise ValueError("fields")
        except (ValueError, TypeError, KeyError, RecursionError, binascii.Error):
            raise NoInputError(*_NOT_FOUND) from None
        if self.config.clock() > expires + self.config.token_grace:
            raise NoInputError(*_NOT_FOUND)
        return upload_id, count, digest, policy


class _Exists(ConflictError):
    """The object exists and the policy forbids overwriting it (409; the seed's client gets 422)."""


def _digest(md5s: list[str]) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256("".join(md5s).encode()).digest()).rstrip(b"=").decode()


def _mac(secret: str, payload: str, key: str) -> str:
    msg = f"{_TICKET}.{payload}\n{key}".encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()).rstrip(b"=").decode()


def _exact_parts(held: list[dict[str, Any]], count: int, digest: str) -> list[dict[str, Any]]:
    """The parts to complete with: exactly 1..count, whose ETags are the presigned MD5s."""
    numbers = {p["number"] for p in held}
    missing = [n for n in range(1, count + 1) if n not in numbers]
    if not held:
        raise PartialError("the upload has no parts yet", "Upload the parts, then complete.")
    if missing:
        shown = ", ".join(str(n) for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise PartialError(f"{len(missing)} of {count} parts are not on the server: {shown}",
                           "Upload them, then complete again.")
    chosen = sorted((p for p in held if p["number"] <= count), key=lambda p: p["number"])
    if _digest([str(p["etag"]).strip('"').lower() for p in chosen]) != digest:
        raise DataError("the parts on the server are not the bytes that were presigned",
                        "Upload each part again with the bytes whose MD5 was sent to /presign.")
    return [{"number": p["number"], "etag": p["etag"]} for p in chosen]


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
