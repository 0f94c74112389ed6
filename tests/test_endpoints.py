"""The relay's comparison of a token's S3 endpoint with its own (issue 11: localhost vs 127.0.0.1)."""
from __future__ import annotations

import pytest

from s3mpu.endpoints import same_endpoint


@pytest.mark.parametrize(("a", "b"), [
    ("http://localhost:9000", "http://127.0.0.1:9000"),
    ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
    ("https://S3.Example.com", "https://s3.example.com:443/"),
    ("http://s3.example.com:80", "http://s3.example.com"),
    ("http://[::1]:9000", "http://localhost:9000"),
])
def test_same_server(a: str, b: str) -> None:
    assert same_endpoint(a, b)


@pytest.mark.parametrize(("a", "b"), [
    ("http://127.0.0.1:9000", "http://127.0.0.1:9001"),
    ("http://s3.example.com", "https://s3.example.com"),
    ("https://s3.example.com", "https://s3.example.org"),
    ("http://s3.example.com:8080", "http://s3.example.com"),
])
def test_other_server(a: str, b: str) -> None:
    assert not same_endpoint(a, b)
