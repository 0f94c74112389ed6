"""Classifying S3 answers by their XML <Code> first (servers disagree on status codes)."""
from __future__ import annotations

from s3mpu.errors import AccessDeniedError, DataError, NoInputError, TempFailError
from s3mpu.s3errors import classify_http, retryable, xml_error

RCLONE_EXPIRED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>The difference '
                  b"between the request time and the server&#39;s time exceeds the maximum allowed.</Message></Error>")


def test_xml_error_unescapes_entities() -> None:
    code, message = xml_error(RCLONE_EXPIRED)
    assert code == "AccessDenied" and "server's time" in message


def test_rclone_expiry_is_400_but_access_denied_not_data() -> None:
    err = classify_http(400, RCLONE_EXPIRED, "part 3")
    assert isinstance(err, AccessDeniedError) and "expired" in err.message and "refresh" in err.hint


def test_classification_by_code_and_status() -> None:
    body = b"<Error><Code>%s</Code><Message>m</Message></Error>"
    assert isinstance(classify_http(400, body % b"BadDigest", "p"), DataError)
    assert isinstance(classify_http(404, body % b"NoSuchUpload", "p"), NoInputError)
    assert isinstance(classify_http(503, body % b"SlowDown", "p"), TempFailError)
    assert isinstance(classify_http(403, b"", "p"), AccessDeniedError)
    assert retryable(503, "SlowDown") and retryable(500) and retryable(429)
    assert not retryable(403, "AccessDenied") and not retryable(400, "BadDigest") and not retryable(500, "AccessDenied")
