"""The relay's one table from exception to HTTP status and error code (SPEC §4: no input gets a 5xx)."""
from __future__ import annotations

import pytest

from s3mpu.errors import (AccessDeniedError, ConfigError, DataError, NoInputError, PartialError, S3mpuError,
                          TempFailError, UnsupportedError, UsageError)
from s3mpu.relay.config import AuthError, LimitError
from s3mpu.relay.service import ConflictError, MediaTypeError, UpstreamError, http_error


@pytest.mark.parametrize("exc,answer", [
    (LimitError("too many"), (429, "too_many_uploads")),
    (AuthError("bad token"), (401, "unauthorized")),
    (ConflictError("exists"), (409, "conflict")),
    (MediaTypeError("text/plain"), (415, "unsupported_media_type")),
    (RecursionError(), (400, "bad_request")),
    (AccessDeniedError("the URLs expired at noon"), (403, "expired")),
    (AccessDeniedError("outside the policy"), (403, "forbidden")),
    (PartialError("2 parts missing"), (409, "parts_missing")),
    (UsageError("bad field"), (400, "bad_request")),
    (DataError("wrong size"), (422, "parts_mismatch")),
    (NoInputError("gone"), (404, "no_such_upload")),
    (UpstreamError("S3 down"), (502, "upstream_error")),
    (TempFailError("S3 down"), (502, "upstream_error")),
    (UnsupportedError("no ListParts"), (501, "unsupported")),
    (ConfigError("no secret"), (500, "relay_misconfigured")),
    (S3mpuError("other"), (500, "internal_error")),
    (ValueError("bug"), (500, "internal_error")),
])
def test_each_error_class_has_its_status(exc: BaseException, answer: tuple[int, str]) -> None:
    assert http_error(exc) == answer
