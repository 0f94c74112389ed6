"""Uploads of more than 1000 parts: the presigned ListParts pages let a strict server list them all.

S3 lists at most 1000 parts a page, and a presigned URL cannot take a ``part-number-marker``
added afterwards on a server that checks signatures (rclone). Mint presigns the pages.
"""
from __future__ import annotations

import json
from typing import Any

from s3mpu import manifest as manifests
from s3mpu.user.httpclient import HttpClient, list_parts
from s3mpu.admin.mint import MintRequest, mint
from s3mpu.admin.presign import Presigner
from servers import S3Server

MiB = 1 << 20


def _upload_tiny_parts(server: S3Server, numbers: list[int]) -> tuple[Any, str, str]:
    c = server.client()
    bucket = server.bucket("pages")
    uid = c.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for n in numbers:
        c.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=n, Body=b"x")
    return Presigner(c, bucket, "k", uid, 600), bucket, uid


def test_strict_server_lists_past_1000_parts_only_with_presigned_pages(rclone_server: S3Server) -> None:
    numbers = list(range(1, 1006))  # contiguous: rclone buffers parts that arrive after a gap
    presigner, _bucket, _uid = _upload_tiny_parts(rclone_server, numbers)
    http = HttpClient()
    unsigned = list_parts(http, presigner.list_parts_url())
    assert len(unsigned.parts) == 1000 and unsigned.complete is False  # the appended marker is refused
    paged = list_parts(http, presigner.list_parts_url(), pages=presigner.list_parts_pages(1005))
    assert paged.complete is True and [p["number"] for p in paged.parts] == numbers


def test_pages_merge_when_the_next_marker_is_not_a_page_boundary(moto_server: S3Server) -> None:
    numbers = [n for n in range(1, 1006) if n != 500]  # S3's next marker is then 1001; the page starts at 1000
    presigner, _bucket, _uid = _upload_tiny_parts(moto_server, numbers)
    paged = list_parts(HttpClient(), presigner.list_parts_url(), pages=presigner.list_parts_pages(1005))
    assert paged.complete is True
    assert [p["number"] for p in paged.parts] == numbers  # merged, in order, none twice


def test_mint_presigns_pages_only_for_large_uploads(moto_server: S3Server) -> None:
    c = moto_server.client()
    bucket = moto_server.bucket()
    big = mint(c, MintRequest(bucket=bucket, key="big", size=2001 * 5 * MiB, part_size=5 * MiB),
               endpoint=moto_server.endpoint, region="us-east-1")
    assert len(big.parts) == 2001 and len(big.list_parts_pages) == 2
    assert ["part-number-marker=1000" in big.list_parts_pages[0], "part-number-marker=2000" in big.list_parts_pages[1]] \
        == [True, True]
    assert manifests.loads(big.to_json()) == big  # survives the schema
    assert all("X-Amz-Signature=REDACTED" in u for u in big.redacted()["list_parts_pages"])
    small = mint(c, MintRequest(bucket=bucket, key="small", size=MiB), endpoint=moto_server.endpoint,
                 region="us-east-1")
    assert small.list_parts_pages == () and "list_parts_pages" not in json.loads(small.to_json())
