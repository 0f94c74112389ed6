"""SigV2 manifests (``--signature-v2``, as the seed and s3cmd use for old Ceph) on s3rver, which
checks V2 signatures and expiry; and virtual-hosted addressing on rclone (which checks SigV4).

s3rver comes from npm (LAB.md): a session fixture installs s3rver@3.7.1 into a cache directory
(``$S3MPU_TEST_NODE_DIR``, default ``<tmp>/s3mpu-test-node``) when it is not there yet.
s3rver has no ListParts, so uploads there are completed with the admin client.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
import urllib3

from relay_fixtures import put_parts, relay_settings
from s3mpu.config import Settings, s3_client
from s3mpu.manifest import Manifest
from s3mpu.admin.mint import MintRequest, mint
from s3mpu.relay.server import start_relay
from servers import S3Server, free_port, wait_port

S3RVER_VERSION = "3.7.1"
HTTP = urllib3.PoolManager(retries=False)
MiB = 1024 * 1024


def s3rver_binary() -> str:
    base = Path(os.environ.get("S3MPU_TEST_NODE_DIR") or Path(tempfile.gettempdir()) / "s3mpu-test-node")
    binary = base / "node_modules" / ".bin" / "s3rver"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed, so s3rver (the SigV2-checking server) cannot be; install Node.js")
        base.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(base), f"s3rver@{S3RVER_VERSION}"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and binary.exists(), f"npm install s3rver failed: {r.stderr[-500:]}"
    return str(binary)


@pytest.fixture(scope="session")
def s3rver_server(tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    proc = subprocess.Popen([s3rver_binary(), "-d", str(tmp_path_factory.mktemp("s3rver")), "-a", "127.0.0.1",
                             "-p", str(port), "--no-vhost-buckets"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    yield S3Server("s3rver", f"http://127.0.0.1:{port}", strict=True, access_key="S3RVER", secret_key="S3RVER")
    proc.terminate()
    proc.wait(10)


def v2_settings(server: S3Server) -> Settings:
    return relay_settings(server, signature_version="s3")  # what the --signature-v2 global flag sets


class V2Client:
    """A SigV2 client for s3rver: presigns (the part under test) with SigV2, calls with SigV4.

    s3rver 3.7.1 cannot check *header*-signed V2 requests (it leaves the Date line of the
    string to sign empty, unlike S3 and Ceph), while it checks presigned V2 URLs correctly and
    accepts any V4 call unchecked. So admin calls go out as V4 and every URL is presigned V2.
    """

    def __init__(self, server: S3Server) -> None:
        self._v2 = s3_client(v2_settings(server))
        self._v4 = server.client()
        self.meta = self._v2.meta

    def generate_presigned_url(self, *args, **kwargs):
        return self._v2.generate_presigned_url(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._v4, name)


def v2_client(server: S3Server) -> V2Client:
    return V2Client(server)


def test_sigv2_manifest_uploads_to_s3rver(s3rver_server) -> None:
    bucket = s3rver_server.bucket()
    v2 = v2_client(s3rver_server)
    data = os.urandom(5 * MiB + 123)
    m = mint(v2, MintRequest(bucket=bucket, key="v2/obj", size=len(data), part_size=5 * MiB),
             endpoint=s3rver_server.endpoint, region="us-east-1", signature_version="s3")
    assert m.signature_version == "s3"
    assert all("Signature=" in p.url and "AWSAccessKeyId=" in p.url and "X-Amz-" not in p.url for p in m.parts)
    Manifest.from_dict(json.loads(m.to_json()))  # valid manifest v1
    sent = put_parts(m, data)  # no credentials: only the V2-signed URLs
    admin = s3rver_server.client()
    admin.complete_multipart_upload(Bucket=bucket, Key="v2/obj", UploadId=m.upload_id, MultipartUpload={
        "Parts": [{"PartNumber": p["number"], "ETag": p["etag"]} for p in sent]})
    assert admin.get_object(Bucket=bucket, Key="v2/obj")["Body"].read() == data


def test_sigv2_signature_and_expiry_checked(s3rver_server) -> None:
    bucket = s3rver_server.bucket()
    v2 = v2_client(s3rver_server)
    m = mint(v2, MintRequest(bucket=bucket, key="v2/x", size=10), endpoint=s3rver_server.endpoint,
             region="us-east-1", signature_version="s3")
    url = m.parts[0].url
    tampered = url.replace("Signature=", "Signature=AAAA")
    assert HTTP.request("PUT", tampered, body=b"0123456789").status == 403
    other_part = url.replace("partNumber=1", "partNumber=2")
    assert HTTP.request("PUT", other_part, body=b"0123456789").status == 403
    client = s3rver_server.client()
    uid = client.create_multipart_upload(Bucket=bucket, Key="v2/e")["UploadId"]
    short = v2.generate_presigned_url("upload_part", Params={"Bucket": bucket, "Key": "v2/e", "UploadId": uid,
                                                             "PartNumber": 1}, ExpiresIn=1)
    time.sleep(2.1)  # the shortest wait that crosses a whole-second expiry
    r = HTTP.request("PUT", short, body=b"late")
    assert r.status == 403 and b"AccessDenied" in r.data


def test_sigv2_content_md5_binding(s3rver_server) -> None:
    """A plan-bound (Content-MD5) SigV2 URL refuses a PUT without that exact header."""
    bucket = s3rver_server.bucket()
    v2 = v2_client(s3rver_server)
    body = b"bound bytes"
    md5 = hashlib.md5(body).hexdigest()
    m = mint(v2, MintRequest(bucket=bucket, key="v2/b", size=len(body), md5s=[md5]),
             endpoint=s3rver_server.endpoint, region="us-east-1", signature_version="s3")
    b64 = base64.b64encode(bytes.fromhex(md5)).decode()
    assert HTTP.request("PUT", m.parts[0].url, body=body).status == 403
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert HTTP.request("PUT", m.parts[0].url, body=b"other", headers={"Content-MD5": wrong}).status == 403
    assert HTTP.request("PUT", m.parts[0].url, body=body, headers={"Content-MD5": b64}).status == 200


def test_seed_api_with_sigv2_on_s3rver(s3rver_server) -> None:
    """The seed's own setting: SigV2 URLs binding each part's Content-MD5."""
    bucket = s3rver_server.bucket()
    part = os.urandom(1000)
    b64 = base64.b64encode(hashlib.md5(part).digest()).decode()
    with start_relay(v2_settings(s3rver_server), seed_bucket=bucket, seed_open=True, seed_prefix="drop/",
                     s3_client_factory=lambda: v2_client(s3rver_server)) as relay:
        r = HTTP.request("POST", relay.url + "/presign", fields={"keyname": "seed2", "1": b64}, encode_multipart=False)
        assert r.status == 201
        doc = json.loads(r.data)
        assert "Signature=" in doc["1"]
        assert HTTP.request("PUT", doc["1"], body=part, headers={"Content-MD5": b64}).status == 200
        r = HTTP.request("POST", relay.url + "/complete", fields={"keyname": "seed2", "uploadid": doc["UploadID"]},
                         encode_multipart=False)
        assert r.status == 501 and json.loads(r.data)["error"] == "unsupported"  # s3rver has no ListParts
    admin = s3rver_server.client()
    from urllib.parse import parse_qs, urlsplit

    upload_id = parse_qs(urlsplit(doc["1"]).query)["uploadId"][0]  # the UploadID is the relay's signed ticket
    admin.complete_multipart_upload(Bucket=bucket, Key="drop/seed2", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": hashlib.md5(part).hexdigest()}]})
    assert admin.get_object(Bucket=bucket, Key="drop/seed2")["Body"].read() == part


def test_put_library_on_sigv2_manifest(s3rver_server, tmp_path) -> None:
    from s3mpu.user.upload import upload

    bucket = s3rver_server.bucket()
    v2 = v2_client(s3rver_server)
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(3000))
    m = mint(v2, MintRequest(bucket=bucket, key="put", size=3000), endpoint=s3rver_server.endpoint,
             region="us-east-1", signature_version="s3")
    result = upload(m, path, complete=False)
    assert result.parts_uploaded == 1


def test_virtual_hosted_addressing_on_rclone(tmp_path, monkeypatch) -> None:
    """Virtual-hosted URLs (bucket in the host name) presigned with SigV4, checked by rclone.

    ``*.localhost`` does not resolve on this machine, so name resolution (only) is pointed at
    127.0.0.1 for those names, as a DNS wildcard record would; the requests are real.
    """
    import socket

    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    from servers import ACCESS_KEY, SECRET_KEY, rclone_binary

    port = free_port()
    proc = subprocess.Popen([rclone_binary(), "serve", "s3", "--config", "/dev/null", "--addr", f"127.0.0.1:{port}",
                             "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", "--force-path-style=false",
                             "--log-level", "ERROR", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        server = S3Server("rclone-vhost", f"http://localhost:{port}", strict=True)
        settings = replace(relay_settings(server), addressing="virtual")
        client = s3_client(settings)
        bucket = "vhost-bucket"
        client.create_bucket(Bucket=bucket)
        m = mint(client, MintRequest(bucket=bucket, key="v/obj", size=10, relay_url="http://relay"),
                 endpoint=server.endpoint, region="us-east-1", relay_secret="s")
        url = urllib3.util.parse_url(m.parts[0].url)
        assert url.host == f"{bucket}.localhost" and url.path == "/v/obj"
        http = urllib3.PoolManager(retries=False)
        bad = http.request("PUT", m.parts[0].url.replace("partNumber=1", "partNumber=2"), body=b"0123456789")
        assert bad.status == 403  # the signature covers the virtual-hosted request
        r = http.request("PUT", m.parts[0].url, body=b"0123456789")
        assert r.status == 200, r.data[:300]
        etag = r.headers["ETag"]
        client.complete_multipart_upload(Bucket=bucket, Key="v/obj", UploadId=m.upload_id,
                                              MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
        assert client.get_object(Bucket=bucket, Key="v/obj")["Body"].read() == b"0123456789"
    finally:
        proc.terminate()
        proc.wait(5)
