"""s3mpu.admin.completion on real servers: every check happens BEFORE CompleteMultipartUpload.

rclone destroys an upload after a failed complete, so for each refusal we prove that
complete was never sent (a botocore event hook counts the calls) and that the upload is still
there afterwards (ListParts works), on moto and on rclone.
"""
from __future__ import annotations

import pytest

from relay_fixtures import mint_for, put_parts
from s3mpu.admin.completion import complete_upload, composite_etag, list_parts, verify_parts
from s3mpu.errors import DataError, NoInputError, PartialError
from s3mpu.token import Identity

MiB = 1024 * 1024
PS = 5 * MiB


class Counted:
    """An admin client whose CompleteMultipartUpload calls are counted (real calls, real server)."""

    def __init__(self, server) -> None:
        self.client = server.client()
        self.completes = 0
        self.client.meta.events.register("before-call.s3.CompleteMultipartUpload", self._count)

    def _count(self, **_kw) -> None:
        self.completes += 1


def _setup(s3, size, numbers=None, *, max_size=None):
    bucket = s3.bucket()
    data = bytes((i * 7) % 251 for i in range(min(size, 4096))) * (size // 4096 + 1)
    data = data[:size]
    kw = {"max_size": max_size} if max_size else {"size": size}
    m = mint_for(s3, bucket, "obj", None, part_size=PS, **kw)
    sent = put_parts(m, data, numbers)
    return m, data, sent, Identity.from_manifest(m)


def _still_there(s3, m) -> None:
    assert isinstance(list_parts(s3.client(), m.bucket, m.key, m.upload_id), list)


def test_exact_complete_and_idempotent(s3) -> None:
    m, data, sent, ident = _setup(s3, 2 * PS + 3)
    spy = Counted(s3)
    first = complete_upload(spy.client, ident, sent, len(data))
    assert first == {"etag": first["etag"], "size": len(data), "key": "obj", "bucket": m.bucket, "parts": 3}
    assert first["etag"] == composite_etag([p["etag"] for p in sent])
    again = complete_upload(spy.client, ident, sent, len(data))
    assert again["size"] == len(data) and spy.completes == 1
    assert complete_upload(spy.client, ident)["size"] == len(data)  # without the client's list too
    assert s3.client().get_object(Bucket=m.bucket, Key="obj")["Body"].read() == data


def test_missing_part_refused_before_complete(s3) -> None:
    m, data, sent, ident = _setup(s3, 2 * PS + 3, numbers=[1, 3])
    spy = Counted(s3)
    with pytest.raises(PartialError) as info:
        complete_upload(spy.client, ident)
    assert info.value.failed == [2] and "2" in info.value.message
    assert spy.completes == 0
    _still_there(s3, m)


def test_wrong_size_refused_before_complete(s3) -> None:
    m, data, sent, ident = _setup(s3, 2 * PS, numbers=[1])
    admin = s3.client()  # an admin (not the presigned URL, which signs the length) stores a short part 2
    admin.upload_part(Bucket=m.bucket, Key=m.key, UploadId=m.upload_id, PartNumber=2, Body=b"short")
    spy = Counted(s3)
    with pytest.raises(DataError, match="part 2 on the server has 5 bytes"):
        complete_upload(spy.client, ident)
    assert spy.completes == 0
    _still_there(s3, m)


def test_etag_mismatch_refused_before_complete(s3) -> None:
    m, data, sent, ident = _setup(s3, PS + 1)
    bad = [dict(sent[0]), {**sent[1], "etag": "0" * 32}]
    spy = Counted(s3)
    with pytest.raises(DataError, match="ETag"):
        complete_upload(spy.client, ident, bad)
    assert spy.completes == 0
    _still_there(s3, m)
    assert complete_upload(spy.client, ident, sent)["size"] == PS + 1  # the upload was kept intact


def test_client_list_must_match_layout(moto_server) -> None:
    m, data, sent, ident = _setup(moto_server, PS + 1)
    spy = Counted(moto_server)
    with pytest.raises(DataError, match="does not match"):
        complete_upload(spy.client, ident, sent[:1])
    with pytest.raises(DataError, match="exactly"):
        complete_upload(spy.client, ident, sent, size=PS)
    assert spy.completes == 0


def test_max_size_smaller_file(s3) -> None:
    m, data, sent, ident = _setup(s3, PS + 100, max_size=4 * PS)
    assert len(sent) == 2
    spy = Counted(s3)
    with pytest.raises(DataError, match="part 2 on the server has 100 bytes, expected 99"):
        complete_upload(spy.client, ident, sent, size=PS + 99)
    assert spy.completes == 0
    out = complete_upload(spy.client, ident, sent, size=PS + 100)
    assert out["size"] == PS + 100 and out["parts"] == 2
    assert s3.client().get_object(Bucket=m.bucket, Key="obj")["Body"].read() == data


def test_max_size_without_client_list_completes_from_listparts(moto_server) -> None:
    m, data, sent, ident = _setup(moto_server, 2 * PS + 5, max_size=5 * PS)
    assert complete_upload(moto_server.client(), ident)["size"] == 2 * PS + 5  # the short part 3 ends the file


def test_max_size_ambiguous_end_is_refused(s3) -> None:
    """Parts 1-2 full-sized of a 4-part maximum: the file may go on, completing could truncate it."""
    m, data, sent, ident = _setup(s3, 2 * PS, max_size=4 * PS)
    spy = Counted(s3)
    with pytest.raises(DataError, match="where the file ends"):
        complete_upload(spy.client, ident)
    assert spy.completes == 0
    _still_there(s3, m)
    assert complete_upload(spy.client, ident, size=2 * PS)["size"] == 2 * PS  # with the size it is clear


def test_max_size_gap_is_partial(s3) -> None:
    m, data, sent, ident = _setup(s3, 3 * PS, numbers=[1, 3], max_size=4 * PS)
    spy = Counted(s3)
    with pytest.raises(PartialError) as info:
        complete_upload(spy.client, ident)
    assert info.value.failed == [2] and spy.completes == 0
    _still_there(s3, m)


def test_gone_upload_without_object_is_noinput(moto_server) -> None:
    m, data, sent, ident = _setup(moto_server, 10)
    moto_server.client().abort_multipart_upload(Bucket=m.bucket, Key=m.key, UploadId=m.upload_id)
    with pytest.raises(NoInputError, match="no longer exists"):
        complete_upload(moto_server.client(), ident)


def test_gone_upload_with_other_object_is_not_success(moto_server) -> None:
    m, data, sent, ident = _setup(moto_server, 10)
    admin = moto_server.client()
    admin.abort_multipart_upload(Bucket=m.bucket, Key=m.key, UploadId=m.upload_id)
    admin.put_object(Bucket=m.bucket, Key=m.key, Body=b"other bytes, other size")
    with pytest.raises(NoInputError):
        complete_upload(admin, ident)


def test_list_parts_follows_pagination(moto_server) -> None:
    bucket = moto_server.bucket()
    admin = moto_server.client()
    uid = admin.create_multipart_upload(Bucket=bucket, Key="p")["UploadId"]
    for n in range(1, 6):
        admin.upload_part(Bucket=bucket, Key="p", UploadId=uid, PartNumber=n, Body=b"a" * n)
    parts = list_parts(admin, bucket, "p", uid, page_size=2)
    assert [(p["number"], p["size"]) for p in parts] == [(n, n) for n in range(1, 6)]
    assert all(len(p["etag"]) == 32 and '"' not in p["etag"] for p in parts)


def test_verify_parts_pure() -> None:
    ident = Identity("http://x", "b", "k", "u", 25, False, 10, 3, 0)
    held = [{"number": 1, "size": 10, "etag": "a"}, {"number": 2, "size": 10, "etag": "b"},
            {"number": 3, "size": 5, "etag": "c"}]
    assert verify_parts(ident, held) == held
    assert verify_parts(ident, held, [{"number": 1, "etag": '"A"'}, {"number": 2, "etag": "b"},
                                      {"number": 3, "etag": "c"}]) == held
    with pytest.raises(DataError, match="part 3"):
        verify_parts(ident, held[:2] + [{"number": 3, "size": 6, "etag": "c"}])
    maxed = Identity("http://x", "b", "k", "u", 30, True, 10, 3, 0)
    assert verify_parts(maxed, held[:2] + [{"number": 3, "size": 1, "etag": "c"}], size=21)[-1]["size"] == 1
    with pytest.raises(DataError, match="1..10"):
        verify_parts(maxed, [{"number": 1, "size": 11, "etag": "a"}])
    with pytest.raises(PartialError):
        verify_parts(maxed, [])


def test_server_refusing_object_size_header_is_completed_without_it(moto_server) -> None:
    """A server that refuses x-amz-mp-object-size (simulated answer; moto and rclone ignore it)."""
    from botocore.awsrequest import AWSResponse

    m, data, sent, ident = _setup(moto_server, PS + 9)
    client = moto_server.client()
    seen: list[bool] = []

    class _Raw:
        def stream(self, **_kw):
            yield b""

    def refuse(request, **_kw):
        has = "x-amz-mp-object-size" in request.headers
        seen.append(has)
        if has:
            body = (b"<?xml version='1.0'?><Error><Code>NotImplemented</Code><Message>A header you provided "
                    b"implies functionality that is not implemented: x-amz-mp-object-size</Message></Error>")
            resp = AWSResponse(request.url, 501, {}, _Raw())
            resp._content = body
            return resp
        return None

    client.meta.events.register("before-send.s3.CompleteMultipartUpload", refuse)
    out = complete_upload(client, ident, sent)
    assert out["size"] == PS + 9 and seen == [True, False]
    assert moto_server.client().get_object(Bucket=m.bucket, Key="obj")["Body"].read() == data
