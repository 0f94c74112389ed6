"""``s3://BUCKET/KEY`` parsing, as s3cmd's S3Uri."""
from __future__ import annotations

from dataclasses import dataclass

from s3mpu.errors import UsageError


@dataclass(frozen=True)
class S3Uri:
    """A bucket and an optional key (or prefix)."""

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, text: str, *, need_key: bool = False) -> S3Uri:
        if not text.startswith("s3://"):
            raise UsageError(f"not an S3 URI: {text!r}", "Name objects as s3://BUCKET/KEY.")
        rest = text[5:]
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise UsageError(f"no bucket in {text!r}", "Name objects as s3://BUCKET/KEY.")
        if need_key and not key:
            raise UsageError(f"no object key in {text!r}", "Name the object as s3://BUCKET/KEY.")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"
