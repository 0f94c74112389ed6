"""Admin-side S3 calls with credentials: abort, complete directly, list uploads, cleanup."""
from __future__ import annotations

from typing import Any

from .s3errors import classify_boto


def abort_upload(client: Any, bucket: str, key: str, upload_id: str) -> None:
    """Abort an upload; an upload already gone counts as aborted."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception as exc:
        err = classify_boto(exc, f"aborting upload {upload_id} of s3://{bucket}/{key}")
        if getattr(exc, "response", {}).get("Error", {}).get("Code") == "NoSuchUpload":
            return
        raise err from None
