"""Bundles minted with SigV2 (``--signature-v2``): a single PUT on s3rver, which checks V2 signatures, with
exactly the headers the bundle lists. SigV2 cannot sign a length, and s3rver does not compare a body with
its Content-MD5, so only the signature's binding of the MD5 and headers is proven here (rclone proves the
rest for SigV4: tests/test_mint_bundle.py)."""
from __future__ import annotations

import base64
import hashlib
from typing import Any

import urllib3

from s3mpu.admin.mint_bundle import BundleFile, BundleRequest, mint_bundle
from s3mpu.config import Settings, s3_client
from test_relay_sigv2 import s3rver_server  # noqa: F401 - the session fixture

HTTP = urllib3.PoolManager(retries=False)


def test_sigv2_single_put_with_listed_headers(s3rver_server: Any) -> None:  # noqa: F811
    s = s3rver_server
    settings = Settings(endpoint_url=s.endpoint, region=s.region, access_key=s.access_key, secret_key=s.secret_key,
                        addressing="path", signature_version="s3")
    client = s3_client(settings)
    bucket = s.bucket()
    md5 = hashlib.md5(b"hello").hexdigest()
    req = BundleRequest(bucket=bucket, prefix="in/", files=[BundleFile("a.txt", 5, 5 << 20, [md5])],
                        metadata={"k": "v"})
    b = mint_bundle(client, req, endpoint=s.endpoint, region=s.region, signature_version="s3")
    o = b.objects[0]
    assert o.url and "Signature=" in o.url
    headers = {**o.headers, "Content-MD5": base64.b64encode(bytes.fromhex(md5)).decode()}
    other = {**headers, "Content-MD5": base64.b64encode(hashlib.md5(b"hellp").digest()).decode()}
    assert HTTP.request("PUT", o.url, body=b"hellp", headers=other).status == 403  # the MD5 is signed
    no_type = {k: v for k, v in headers.items() if k != "content-type"}
    assert HTTP.request("PUT", o.url, body=b"hello", headers=no_type).status == 403  # the header must be sent
    r = HTTP.request("PUT", o.url, body=b"hello", headers=headers)
    assert r.status == 200, (o.headers, r.data)
    got = s.client().get_object(Bucket=bucket, Key="in/a.txt")
    assert got["Body"].read() == b"hello" and got["ContentType"] == "text/plain" and got["Metadata"] == {"k": "v"}
