"""Turning S3's answers into s3mpu errors, for boto3 calls (admin side) and raw HTTP (user side).

Servers disagree on status codes (rclone answers an expired URL with 400, AWS with 403), so
classification goes by the S3 error ``<Code>`` in the XML body first and the status second.
"""
from __future__ import annotations

import html
import re
from typing import Any

from s3mpu.errors import (AccessDeniedError, ConfigError, DataError, NoInputError, S3mpuError, TempFailError,
                          UnsupportedError)

ACCESS_CODES = {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "RequestExpired",
                "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AuthorizationQueryParametersError"}
DATA_CODES = {"BadDigest", "InvalidDigest", "EntityTooSmall", "EntityTooLarge", "InvalidPart", "InvalidPartOrder",
              "IncompleteBody", "InvalidArgument", "MalformedXML"}
MISSING_CODES = {"NoSuchUpload", "NoSuchBucket", "NoSuchKey"}
#: the server lacks the operation (s3rver: ListParts, AbortMultipartUpload): retrying cannot help
UNSUPPORTED_CODES = {"NotImplemented", "MethodNotAllowed"}
UNSUPPORTED_HINT = ("Retrying will not help: use the server's own tools for this, or an S3 server that "
                    "implements it.")
RETRY_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed",
               "OperationAborted"}
#: the server asks to slow down: these keep the full backoff from the first retry on
THROTTLE_CODES = {"SlowDown", "ServiceUnavailable", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                  "TooManyRequests"}
_CODE_RE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_MSG_RE = re.compile(rb"<Message>([^<]{0,300})</Message>")


def xml_error(body: bytes) -> tuple[str, str]:
    """``(code, message)`` from an S3 XML error body; empty strings when there is none."""
    code = _CODE_RE.search(body or b"")
    msg = _MSG_RE.search(body or b"")
    return (html.unescape(code.group(1).decode("utf-8", "replace")) if code else "",
            html.unescape(msg.group(1).decode("utf-8", "replace")) if msg else "")  # &#39; -> '  in messages


def is_expired(code: str, message: str) -> bool:
    text = f"{code} {message}".lower()
    # rclone words an expired presigned URL as AccessDenied "The difference between the request
    # tim... time exceeds the maximum allowed." (sic, shortened; no "expired" in it).
    return ("expired" in text or code == "RequestExpired"
            or (code == "AccessDenied" and "difference between the request" in text))


def retryable(status: int, code: str = "") -> bool:
    """Whether a fresh attempt may succeed: 5xx, throttling, timeouts; never 403/expired."""
    if code in ACCESS_CODES or code in DATA_CODES or code in MISSING_CODES or code in UNSUPPORTED_CODES:
        return False
    if status in (405, 501) and not code:
        return False
    return status >= 500 or status in (408, 429) or code in RETRY_CODES


def throttled(status: int, code: str = "") -> bool:
    """Whether the server said to slow down (503, 429, SlowDown...), rather than failed once."""
    return status in (429, 503) or code in THROTTLE_CODES


def missing(what: str, code: str, detail: str) -> NoInputError:
    """Exit 66 with the next step that fits what is missing: the bucket, the object, or the upload."""
    if code == "NoSuchBucket":
        return NoInputError(f"{what}: the bucket does not exist ({detail})",
                            "Check the bucket name and the endpoint (--endpoint-url, --region), or create the bucket.")
    if code == "NoSuchKey":
        return NoInputError(f"{what}: the object does not exist ({detail})", "Check the key (s3://BUCKET/KEY).")
    return NoInputError(f"{what}: the upload no longer exists on the server ({detail})",
                        "It was completed, aborted or expired; ask the admin to mint a new manifest.")


def unsupported(what: str, detail: str) -> UnsupportedError:
    return UnsupportedError(f"{what}: this S3 server does not support the operation ({detail})", UNSUPPORTED_HINT)


def classify_http(status: int, body: bytes, what: str, next_step: str = "") -> S3mpuError:
    """An error for a failed presigned request (``what`` says which, e.g. "part 3")."""
    code, message = xml_error(body)
    detail = f"{code or 'HTTP ' + str(status)}{': ' + message if message else ''}"
    if code in ACCESS_CODES or status in (401, 403):
        if is_expired(code, message):
            return AccessDeniedError(f"{what}: the presigned URL has expired ({detail})",
                                     next_step or "Ask the admin for a refreshed manifest (s3mpu mint --refresh), then re-run.")
        return AccessDeniedError(f"{what}: S3 refused the presigned URL ({detail})",
                                 next_step or "The manifest may be altered or for another server; ask the admin for a new one.")
    if code in MISSING_CODES or status == 404:
        return missing(what, code, detail)
    if code in UNSUPPORTED_CODES or (status in (405, 501) and not code):
        return unsupported(what, detail)
    if code in DATA_CODES or status in (400, 411, 413):
        return DataError(f"{what}: the server rejected the data ({detail})", next_step)
    return TempFailError(f"{what}: server error ({detail})", next_step or "Retry later; re-running resumes.")


def classify_boto(exc: BaseException, what: str) -> S3mpuError:
    """An error for a failed boto3 call, by botocore's exception type and the S3 code."""
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "NoRegionError", "ProfileNotFound"):
        return ConfigError(f"{what}: {exc}", "Set credentials (flags, AWS_* variables, -c config file) or run s3mpu configure.")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
                "ProxyConnectionError", "SSLError"):
        return TempFailError(f"{what}: cannot reach S3 ({exc})", "Check --endpoint-url and the network, then retry.")
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    err = response.get("Error", {}) or {}
    code = str(err.get("Code", ""))
    message = str(err.get("Message", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    detail = f"{code or status}{': ' + message if message else ''}"
    if code in ACCESS_CODES or status == 403:
        return AccessDeniedError(f"{what}: access denied ({detail})", "Check the credentials and the bucket policy.")
    if code in MISSING_CODES or status == 404:
        if code == "NoSuchUpload":
            return NoInputError(f"{what}: no such upload ({detail})",
                                "It was completed, aborted or expired, or the id is mistyped: see s3mpu listmp s3://BUCKET.")
        return missing(what, code, detail) if code else NoInputError(f"{what}: not found ({detail})",
                                                                     "Check the bucket and key.")
    if code in UNSUPPORTED_CODES or status in (405, 501):
        return unsupported(what, detail)
    if code in DATA_CODES or 400 <= status < 500:
        return DataError(f"{what}: refused ({detail})")
    return TempFailError(f"{what}: S3 error ({detail})", "Retry later.")
