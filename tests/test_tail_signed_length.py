"""``signed_length`` reads X-Amz-SignedHeaders with one regex (``info`` asks it of all 10,000 parts)."""
from __future__ import annotations

import pytest

from s3mpu.user.tail import signed_length

BASE = "https://s3.example/b/k?partNumber=3&uploadId=U&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261130T000000Z"


@pytest.mark.parametrize("url,signed", [
    (BASE + "&X-Amz-SignedHeaders=content-length%3Bhost&X-Amz-Signature=ab", True),
    (BASE + "&X-Amz-SignedHeaders=content-length%3bcontent-md5%3bhost&X-Amz-Signature=ab", True),
    (BASE + "&X-Amz-SignedHeaders=Content-Length;Host&X-Amz-Signature=ab", True),
    (BASE + "&X-Amz-SignedHeaders=host&X-Amz-Signature=ab", False),
    (BASE + "&X-Amz-SignedHeaders=content-md5%3Bhost&X-Amz-Signature=ab", False),
    ("https://s3.example/b/content-length?X-Amz-SignedHeaders=host", False),
    ("http://h/b/k?AWSAccessKeyId=A&Expires=9&Signature=s%2B&partNumber=1&uploadId=U", False),  # SigV2
    ("https://s3.example/b/k?X-Amz-SignedHeaders=host#X-Amz-SignedHeaders=content-length", False),
])
def test_signed_length(url: str, signed: bool) -> None:
    assert signed_length(url) is signed
