"""``s3://BUCKET/KEY`` parsing (s3cmd's S3Uri)."""
from __future__ import annotations

import pytest

from s3mpu.errors import UsageError
from s3mpu.s3uri import S3Uri


def test_parse() -> None:
    assert S3Uri.parse("s3://media/videos/raw.mov") == S3Uri("media", "videos/raw.mov")
    assert S3Uri.parse("s3://media") == S3Uri("media", "")
    assert S3Uri.parse("s3://media/") == S3Uri("media", "")
    assert str(S3Uri("media", "a/b")) == "s3://media/a/b"


@pytest.mark.parametrize("text", ["media/raw.mov", "s3://", "s3:///key", "http://media/k"])
def test_refused(text: str) -> None:
    with pytest.raises(UsageError):
        S3Uri.parse(text)


def test_key_required() -> None:
    with pytest.raises(UsageError, match="no object key"):
        S3Uri.parse("s3://media/", need_key=True)
