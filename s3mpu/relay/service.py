"""What the relay does for each endpoint, without any HTTP framework (so it is tested directly).

Each method takes the parsed request body and returns ``(status, JSON-able dict)`` or raises an
:class:`~s3mpu.errors.S3mpuError`; :func:`http_error` maps errors to HTTP status and code.
Authentication of a manifest token happens in two steps so the answer can tell a forged token
(401) from an honest one that has expired (403).
"""
from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from s3mpu import token as tokens
from s3mpu.admin.completion import complete_upload, list_parts
from s3mpu.endpoints import same_endpoint
from s3mpu.errors import (AccessDeniedError, ConfigError, DataError, NoInputError, PartialError, S3mpuError,
                      TempFailError, UnsupportedError, UsageError)
from s3mpu.units import format_duration, utc_iso
from s3mpu.relay.config import AuthError, RelayConfig
from s3mpu.relay import s3watch
from s3mpu.relay.events import Events, note
from s3mpu.relay.inputs import client_parts as _client_parts
from s3mpu.relay.inputs import expires as _expires
from s3mpu.relay.inputs import is_utf8 as _utf8
from s3mpu.relay.inputs import refuse_dot_segments

log = logging.getLogger("s3mpu.relay")
_TOKEN_RE = re.compile(r"v1\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_SIG_RE = re.compile(r"((?:X-Amz-Signature|Signature|X-Amz-Credential|AWSAccessKeyId|X-Amz-Security-Token)=)[^&\s\"']+",
                     re.IGNORECASE)


class UpstreamError(TempFailError):
    """S3 refused or failed a call made with the relay's own credentials (HTTP 502)."""


class MediaTypeError(UsageError):
    """A JSON endpoint was sent another Content-Type (HTTP 415): a browser's simple cross-site POST."""


class ConflictError(S3mpuError):
    """The request conflicts with what S3 holds, e.g. an object the policy forbids overwriting (HTTP 409)."""


_MAX_TOKEN = 64 * 1024  # far above any real token (a 10,000-part plan's digest is 43 characters)
def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove tokens, URL signatures and the given secrets from text bound for a log line."""
    text = _SIG_RE.sub(r"\1REDACTED", _TOKEN_RE.sub("v1.REDACTED", text))
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "REDACTED")
    return text


#: ``(exception class, HTTP status, error code)``: the first class the exception is an instance of
#: answers, so subclasses come before their bases (AuthError before AccessDeniedError, ...).
_HTTP_ERRORS: tuple[tuple[type[BaseException], int, str], ...] = (
    (AuthError, 401, "unauthorized"),
    (ConflictError, 409, "conflict"),
    (MediaTypeError, 415, "unsupported_media_type"),
    (RecursionError, 400, "bad_request"),  # JSON nested too deeply for the parser: the caller's input
    (AccessDeniedError, 403, "forbidden"),  # "expired" when the message says so
    (PartialError, 409, "parts_missing"),
    (UsageError, 400, "bad_request"),
    (DataError, 422, "parts_mismatch"),
    (NoInputError, 404, "no_such_upload"),
    (TempFailError, 502, "upstream_error"),
    (UnsupportedError, 501, "unsupported"),  # the S3 server lacks the operation: not retryable, not the caller's fault
    (ConfigError, 500, "relay_misconfigured"),
)


def http_error(exc: BaseException) -> tuple[int, str]:
    """``(status, error code)`` for an exception raised while handling a request."""
    from s3mpu.relay.config import LimitError

    for cls, status, code in ((LimitError, 429, "too_many_uploads"), *_HTTP_ERRORS):
        if isinstance(exc, cls):
            if cls is AccessDeniedError and "expired" in getattr(exc, "message", ""):
                return status, "expired"
            return status, code
    return 500, "internal_error"


@contextlib.contextmanager
def upstream(what: str) -> Iterator[None]:
    """S3 refusing the *relay's* credentials is the relay's problem (502), not the caller's (403)."""
    try:
        yield
    except AccessDeniedError as exc:
        raise UpstreamError(f"{what}: S3 refused the relay's credentials ({exc.message})") from None
    except UnsupportedError:
        raise
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc.message}") from None


class RelayService:
    """The relay's operations over one :class:`RelayConfig`."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        #: the hook for "an upload was minted/completed/aborted/refreshed" (audit, metrics, webhooks)
        self.events: Events = config.service.events if config.service.events is not None else Events()

    # -- manifest tokens ---------------------------------------------------------------
    def authenticate(self, body: Mapping[str, Any], grace: int | None = None) -> tokens.Identity:
        """The identity a request's manifest token vouches for, or 401/403."""
        secrets = self.config.all_secrets
        if not secrets:
            raise ConfigError("this relay has no relay secret configured",
                              "Set S3MPU_RELAY_SECRET or --secret-file on the relay.")
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise AuthError("the request has no manifest token", 'Send {"token": "<relay token from the manifest>"}.')
        if len(token) > _MAX_TOKEN:
            raise AuthError("relay token is malformed (too long)", "Use the token from the manifest the admin minted.")
        try:  # first the signature alone: a forged or altered token is 401
            signed = tokens.verify(token, secrets, now=0)
        except AccessDeniedError as exc:
            raise AuthError(exc.message, exc.hint) from None
        except (RecursionError, ValueError, TypeError, OverflowError, AttributeError):  # never a 500 for input
            raise AuthError("relay token is malformed", "Use the token from the manifest the admin minted.") from None
        note(who="manifest", bucket=signed.bucket, key=signed.key, upload_id=signed.upload_id)  # for the audit
        identity = tokens.verify(token, secrets, now=self.config.clock(),
                                 grace=self.config.token_grace if grace is None else grace)
        if self.config.check_endpoint and not same_endpoint(identity.endpoint, self.config.endpoint()):
            raise AccessDeniedError(f"the token is for S3 endpoint {identity.endpoint}, this relay serves "
                                    f"{self.config.endpoint()}", "Use the relay named in the manifest.")
        return identity

    def complete(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        identity = self.authenticate(body)
        parts = _client_parts(body.get("parts"))
        size = body.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise UsageError('"size" must be a non-negative integer')
        with upstream("completing the upload"), s3watch.recording() as calls:
            client = self.config.s3()
            result = complete_upload(client, identity, parts, size, object_size_header=self.config.object_size_header)
        s3watch.report_completed(self.events, client, calls, identity.bucket, identity.key, identity.upload_id,
                                 result, "manifest")
        log.info("completed s3://%s/%s upload=%s size=%d parts=%d", identity.bucket, identity.key,
                 identity.upload_id, result["size"], result["parts"])
        return 200, result

    def status(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        identity = self.authenticate(body)
        base = {"bucket": identity.bucket, "key": identity.key, "upload_id": identity.upload_id,
                "expires_at": utc_iso(datetime.fromtimestamp(identity.expires, timezone.utc))}
        try:
            with upstream("listing the upload's parts"):
                parts = list_parts(self.config.s3(), identity.bucket, identity.key, identity.upload_id)
        except NoInputError:
            obj = self._object_there(identity)
            done = {"etag": obj[0], "size": obj[1]} if obj else {}
            return 200, {**base, "parts": [], "upload_exists": False, "completed": obj is not None, **done}
        return 200, {**base, "parts": parts, "upload_exists": True, "completed": False}

    def _object_there(self, identity: tokens.Identity) -> tuple[str, int] | None:
        """``(etag, size)`` of the upload's object when it exists with a size the manifest allows (completed)."""
        try:
            head = self.config.s3().head_object(Bucket=identity.bucket, Key=identity.key)
        except Exception:  # noqa: BLE001 - absent, or not ours to see: either way not "completed"
            return None
        size = int(head.get("ContentLength", -1))
        ok = size == identity.size if not identity.size_is_max else 0 <= size <= identity.size
        return (str(head.get("ETag", "")).strip('"'), size) if ok else None

    def abort(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        identity = self.authenticate(body)
        from s3mpu.admin.housekeeping import abort_upload

        with upstream("aborting the upload"):
            abort_upload(self.config.s3(), identity.bucket, identity.key, identity.upload_id)
        log.info("aborted s3://%s/%s upload=%s", identity.bucket, identity.key, identity.upload_id)
        self.events.aborted(bucket=identity.bucket, key=identity.key, upload_id=identity.upload_id, who="manifest")
        return 200, {"aborted": True, "bucket": identity.bucket, "key": identity.key, "upload_id": identity.upload_id}

    def refresh(self, body: Mapping[str, Any], relay_url: str) -> tuple[int, dict[str, Any]]:
        """New URLs for the same upload, granting no more than the original ones (SPEC §4).

        The expiry is capped by the relay's ``max_refresh_expires`` and, for an upload minted
        through ``/v1/mint``, by its API token's cap (as carried in the token and as the tokens
        file says now); a removed API token refreshes nothing. A plan's Content-MD5 binding is
        kept: the token carries a digest of the MD5 list, the client sends the list.
        """
        identity = self.authenticate(body, grace=max(self.config.refresh_grace, self.config.token_grace))
        now = datetime.fromtimestamp(self.config.clock(), timezone.utc)
        cap_seconds = min(self.config.max_refresh_expires, self._policy_cap(identity))
        cap = now + timedelta(seconds=cap_seconds)
        expires = _expires(body.get("expires"), now) or cap
        expires = min(expires, cap)
        md5s = _refresh_md5s(identity, body.get("md5s"))
        from s3mpu.layout import plan_parts
        from s3mpu.manifest import Manifest, Part
        from s3mpu.admin.mint import refresh

        client = self.config.s3()
        with upstream("checking the upload"):
            list_parts(client, identity.bucket, identity.key, identity.upload_id)  # 404 when it is gone
        spans = plan_parts(identity.size, identity.part_size)
        if len(spans) != identity.parts:
            raise AccessDeniedError("the token's part count does not match its size and part size")
        old = Manifest(endpoint=identity.endpoint, region=self.config.region(), bucket=identity.bucket,
                       key=identity.key, upload_id=identity.upload_id, size=identity.size,
                       size_is_max=identity.size_is_max, part_size=identity.part_size, created_at=utc_iso(now),
                       expires_at=utc_iso(now), parts=tuple(Part(s.number, s.offset, s.size, "", md5s[i] if md5s else None)
                                                            for i, s in enumerate(spans)),
                       signature_version=self.config.settings.signature_version)
        with upstream("presigning"):
            new = refresh(client, old, expires=expires, relay_secret=self.config.all_secrets[0],
                          relay_url=self.config.public_url or relay_url, now=now, policy=identity.policy,
                          policy_max_expires=identity.policy_max_expires)
        log.info("refreshed s3://%s/%s upload=%s until %s", identity.bucket, identity.key, identity.upload_id,
                 new.expires_at)
        self.events.refreshed(bucket=identity.bucket, key=identity.key, upload_id=identity.upload_id, who="manifest",
                              expires_at=new.expires_at)
        return 200, new.to_dict()

    def _policy_cap(self, identity: tokens.Identity) -> int:
        """The longest expiry the upload's minting policy allows now (seconds); refuses a removed policy."""
        if identity.policy is None:  # admin-minted (or minted before tokens named their policy)
            return self.config.max_refresh_expires
        from s3mpu.relay.config import policy_named

        policy = policy_named(self.config.api_tokens, identity.policy)
        if policy is None:
            raise AccessDeniedError(f"this upload was minted under API token {identity.policy!r}, which this relay "
                                    "no longer has; it cannot be refreshed",
                                    "Ask the relay's admin for a new manifest or API token.")
        if not policy.allows_key(identity.bucket, identity.key) or (
                policy.max_size is not None and identity.size > policy.max_size):
            raise AccessDeniedError(f"API token {identity.policy!r} no longer allows this upload; it cannot be "
                                    "refreshed", "Ask the relay's admin for a new manifest.")
        return min(policy.max_expires, identity.policy_max_expires or policy.max_expires)

    def tail(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """``/v1/tail``: the URL of a max-size upload's last part, signed for its exact length (SPEC §5).

        Every other URL of such a manifest is signed for a full part, so whatever sizes a holder
        asks for here, the parts S3 can hold add up to at most the manifest's maximum.
        """
        identity = self.authenticate(body)
        if not identity.size_is_max:
            raise UsageError("this manifest is for an exact size: its part URLs already sign every length",
                             "Upload with the manifest's own URLs (s3mpu put).")
        if identity.md5s_sha256 is not None:
            raise UsageError("this manifest binds a plan's MD5s; it has no separate last-part URL")
        size = body.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise UsageError('"size" must be the file\'s size in bytes (a non-negative integer)')
        if size > identity.size:
            raise AccessDeniedError(f"{size} bytes is more than this upload's maximum of {identity.size}",
                                    "Ask the admin for a manifest with a larger --max-size.")
        from s3mpu.admin.presign import Presigner
        from s3mpu.layout import PartSpan, part_count

        seconds = int(identity.expires - self.config.clock())
        if seconds < 1:
            raise AccessDeniedError("the manifest's URLs have expired, so no last-part URL is signed",
                                    "Refresh the manifest first (s3mpu mint --refresh), then upload again.")
        n = part_count(size, identity.part_size)
        span = PartSpan(n, (n - 1) * identity.part_size, size - (n - 1) * identity.part_size)
        with upstream("presigning"):
            url = Presigner(self.config.s3(), identity.bucket, identity.key, identity.upload_id,
                            seconds).part_url(span, sign_length=True)
        log.info("tail s3://%s/%s upload=%s part=%d size=%d", identity.bucket, identity.key, identity.upload_id,
                 n, span.size)
        return 200, {"number": n, "size": span.size, "url": url,
                     "expires_at": utc_iso(datetime.fromtimestamp(identity.expires, timezone.utc))}

    # -- online minting ------------------------------------------------------------------
    def mint(self, body: Mapping[str, Any], bearer: str | None, relay_url: str) -> tuple[int, dict[str, Any]]:
        """``/v1/mint``: check the API token's policy fully before anything is created in S3."""
        from s3mpu.relay.bundle_mint import is_bundle_request, mint_bundle_request
        if is_bundle_request(body):  # {"prefix", "objects"}: a bundle (SPEC §8)
            return mint_bundle_request(self, body, bearer, relay_url)
        from s3mpu.relay.config import find_api_token
        from s3mpu.admin.mint import mint

        if not self.config.api_tokens:
            raise AccessDeniedError("online minting is not enabled on this relay",
                                    "The relay's admin enables it with s3mpu relay --tokens FILE.")
        policy = find_api_token(self.config.api_tokens, bearer)
        note(who=policy.name)
        req = _mint_request(body)
        now = datetime.fromtimestamp(self.config.clock(), timezone.utc)
        req.expires = _expires(body.get("expires"), now) or now + timedelta(seconds=min(policy.max_expires, 7 * 86400))
        if not policy.allows_key(req.bucket, req.key):
            raise AccessDeniedError(f"API token {policy.name!r} may not mint s3://{req.bucket}/{req.key}",
                                    f"It is limited to s3://{policy.bucket}/{policy.prefix}*: choose a key there.")
        size = req.size if req.size is not None else req.max_size
        if policy.max_size is not None and size is not None and size > policy.max_size:
            raise AccessDeniedError(f"API token {policy.name!r} may mint at most {policy.max_size} bytes, not {size}",
                                    "Ask the relay's admin for an API token that allows a larger size.")
        if (req.expires - now).total_seconds() > policy.max_expires + 1:
            raise AccessDeniedError(f"API token {policy.name!r} allows an expiry of at most "
                                    f"{format_duration(policy.max_expires)}",
                                    f"Ask for less: --expires {format_duration(policy.max_expires).replace(' ', '')} "
                                    "(or leave --expires out to get the longest allowed).")
        secret = self.config.all_secrets[0] if self.config.all_secrets else None
        if req.max_size is not None and not secret:
            raise AccessDeniedError("this relay has no relay secret, so it cannot bound a max-size upload "
                                    "(its last part's URL comes from /v1/tail)", 'Mint with an exact "size".')
        req.relay_url = (self.config.public_url or relay_url) if secret else None
        req.policy, req.policy_max_expires = policy.name, policy.max_expires
        client = self.config.s3()
        self.check_uploads_limit(client, policy)
        with upstream("minting"):
            m = mint(client, req, endpoint=self.config.endpoint(), region=self.config.region(), relay_secret=secret,
                     signature_version=self.config.settings.signature_version, now=now)
        self.check_uploads_limit(client, policy, (m.bucket, m.key, m.upload_id))
        log.info("minted s3://%s/%s upload=%s parts=%d for api token %s", m.bucket, m.key, m.upload_id,
                 len(m.parts), policy.name)
        self.events.minted(bucket=m.bucket, key=m.key, upload_id=m.upload_id, size=m.size, who=policy.name,
                           size_is_max=m.size_is_max)
        return 201, m.to_dict()

    def check_uploads_limit(self, client: Any, policy: Any, created: tuple[str, str, str] | None = None) -> None:
        """429 when the policy's ``max_uploads`` is reached, counted from S3 itself (the relay is stateless).

        Counted before creating (nothing is created when already at the limit) and again after,
        because concurrent mints on several relays can race past the first check: an upload that
        finds itself over the limit is aborted again, so the limit holds (racing mints may both lose).
        """
        if policy.max_uploads is None:
            return
        from s3mpu.admin.housekeeping import abort_upload, list_uploads
        from s3mpu.relay.config import LimitError

        with upstream("counting uploads in progress"):
            count = len(list_uploads(client, policy.bucket, policy.prefix, with_parts=False))
        if count <= policy.max_uploads - (0 if created is not None else 1):
            return
        if created is not None:  # (bucket, key, upload id) of the upload this request just created
            with upstream("aborting the upload over the limit"):
                abort_upload(client, *created)
        raise LimitError(f"API token {policy.name!r} may have at most {policy.max_uploads} upload(s) in progress "
                         f"under s3://{policy.bucket}/{policy.prefix}; {count - (1 if created else 0)} already are",
                         "Complete or abort one (s3mpu complete / s3mpu abort), then mint again.")


def _refresh_md5s(identity: tokens.Identity, given: Any) -> list[str] | None:
    """The plan MD5s to re-sign with: the client's list, checked against the token's digest."""
    if given is None:
        if identity.md5s_sha256 is not None:
            raise UsageError("this upload's URLs bind the plan's part MD5s; the refresh must send them",
                             'Send {"token": ..., "md5s": [every part\'s md5 from the manifest]} (s3mpu does).')
        return None
    if not isinstance(given, list) or len(given) != identity.parts or not all(
            isinstance(h, str) and re.fullmatch(r"[0-9a-fA-F]{32}", h) for h in given):
        raise UsageError(f'"md5s" must be a list of {identity.parts} hex MD5s, one per part')
    md5s = [h.lower() for h in given]
    if identity.md5s_sha256 is not None and tokens.md5s_digest(md5s) != identity.md5s_sha256:
        raise AccessDeniedError("the part MD5s differ from the plan this upload was minted with",
                                "Refresh with the manifest exactly as it was minted.")
    return md5s


def _mint_request(body: Mapping[str, Any]) -> Any:
    from s3mpu.admin.mint import MintRequest

    def opt_int(name: str) -> int | None:
        v = body.get(name)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | str):
            raise UsageError(f'"{name}" must be a number of bytes')
        from s3mpu.units import parse_size

        return parse_size(v)

    bucket, key = body.get("bucket"), body.get("key")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise UsageError('"bucket" and "key" are required strings')
    if not _utf8(bucket) or not _utf8(key):
        raise UsageError('"bucket" and "key" must be valid Unicode (no lone surrogates)')
    if len(key.encode("utf-8")) > 1024:
        raise UsageError('"key" is longer than S3\'s 1024 bytes')
    refuse_dot_segments(key)
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise UsageError('"metadata" must be an object of strings')
    md5s = body.get("md5s")
    if md5s is not None and (not isinstance(md5s, list) or not all(
            isinstance(h, str) and re.fullmatch(r"[0-9a-fA-F]{32}", h) for h in md5s)):
        raise UsageError('"md5s" must be a list of hex MD5s, one per part')
    if md5s is not None and body.get("max_size") is not None:
        raise UsageError('"md5s" (a plan) fixes the size: give "size", not "max_size"')
    ctype = body.get("content_type")
    if ctype is not None and not isinstance(ctype, str):
        raise UsageError('"content_type" must be a string')
    req = MintRequest(bucket=bucket, key=key, size=opt_int("size"), max_size=opt_int("max_size"),
                      part_size=opt_int("part_size"), content_type=ctype, metadata=meta, md5s=md5s)
    if (req.size is None) == (req.max_size is None):
        raise UsageError('give exactly one of "size" and "max_size"')
    from s3mpu.layout import auto_part_size, plan_parts

    total = req.size if req.size is not None else req.max_size
    assert total is not None  # exactly one of them was checked above
    plan_parts(total, req.part_size or auto_part_size(total))  # refuse impossible layouts up front
    return req


__all__ = ["RelayService", "AuthError", "UpstreamError", "ConflictError", "MediaTypeError", "http_error", "scrub", "S3mpuError"]
