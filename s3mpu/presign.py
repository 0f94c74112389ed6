"""Presigning the URLs of a manifest with botocore (never a hand-written signer).

Exact-size part URLs sign ``Content-Length`` so S3 itself refuses a part of the wrong size;
content-bound ones (from a plan) also sign ``Content-MD5`` so S3 refuses other bytes.
"""
from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from .layout import PartSpan


def b64_md5(hex_md5: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_md5)).decode("ascii")


class Presigner:
    """Presigns the calls of one multipart upload for ``expires_in`` seconds."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str, expires_in: int) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.expires_in = expires_in

    def _url(self, op: str, **params: Any) -> str:
        p = {"Bucket": self.bucket, "Key": self.key, "UploadId": self.upload_id, **params}
        return str(self.client.generate_presigned_url(op, Params=p, ExpiresIn=self.expires_in))

    def part_url(self, span: PartSpan, sign_length: bool, md5_hex: str | None = None) -> str:
        params: dict[str, Any] = {"PartNumber": span.number}
        if sign_length:
            params["ContentLength"] = span.size
        if md5_hex:
            params["ContentMD5"] = b64_md5(md5_hex)
        return self._url("upload_part", **params)

    def part_urls(self, spans: Sequence[PartSpan], sign_length: bool,
                  md5s: Sequence[str | None] | None = None) -> list[str]:
        return [self.part_url(s, sign_length, md5s[i] if md5s else None) for i, s in enumerate(spans)]

    def list_parts_url(self) -> str:
        return self._url("list_parts")

    def abort_url(self) -> str:
        return self._url("abort_multipart_upload")
