"""The admin/relay S3 client parses S3's ISO-8601 timestamps without dateutil (10,000-part ListParts).

botocore hands every timestamp to dateutil (~80 µs each); a ListParts of 10,000 parts has 10,000
of them, ~0.75 s of the relay's CPU per complete or status. ``s3_client`` installs a parser that
gives the same datetimes through ``datetime.fromisoformat`` and leaves other forms to botocore.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import dateutil.parser
import pytest
from botocore.utils import parse_timestamp

from s3mpu.admin.completion import list_parts
from s3mpu.config import Settings, iso_timestamp, s3_client


@pytest.mark.parametrize("value", ["2026-11-30T19:42:30.245Z", "2026-11-30T19:42:30Z", "2026-11-30T19:42:30+02:00",
                                   "2026-11-30T19:42:30", "Mon, 30 Nov 2026 19:42:30 GMT", 1764531750, "1764531750"])
def test_same_datetimes_as_botocore(value: Any) -> None:
    ours, theirs = iso_timestamp(value), parse_timestamp(value)
    assert ours == theirs and (ours.tzinfo is None) == (theirs.tzinfo is None)


def test_listing_parts_does_not_call_dateutil(rclone_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """On rclone (a separate process: moto in-process would count its own dateutil calls)."""
    client = s3_client(Settings(endpoint_url=rclone_server.endpoint, region=rclone_server.region,
                                access_key=rclone_server.access_key, secret_key=rclone_server.secret_key,
                                addressing="path"))
    bucket = rclone_server.bucket()
    uid = client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for n in (1, 2, 3):
        client.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=n, Body=b"x" * n)
    calls: list[Any] = []
    real = dateutil.parser.parse
    monkeypatch.setattr(dateutil.parser, "parse", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    assert [p["size"] for p in list_parts(client, bucket, "k", uid)] == [1, 2, 3]
    when = client.list_parts(Bucket=bucket, Key="k", UploadId=uid)["Parts"][0]["LastModified"]
    assert calls == [] and isinstance(when, datetime)
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 3600
    client.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)
