"""Housekeeping for admins and cron: listmp, abortmp, cleanup (library and CLI), on moto and rclone."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from click.testing import CliRunner

from s3mpu.admin.housekeeping import abort_upload, cleanup, list_uploads
from s3mpu.cli import cli
from s3mpu.errors import AccessDeniedError


def run(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def _uploads(s3: Any, bucket: str) -> dict[str, str]:
    """Three uploads: a/one (2 parts), a/two (none), b/three (none); returns key -> upload id."""
    c = s3.client()
    ids = {}
    for key in ("a/one", "a/two", "b/three"):
        ids[key] = c.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    c.upload_part(Bucket=bucket, Key="a/one", UploadId=ids["a/one"], PartNumber=1, Body=b"x" * 5 * 1024 * 1024)
    c.upload_part(Bucket=bucket, Key="a/one", UploadId=ids["a/one"], PartNumber=2, Body=b"y" * 1000)
    return ids


def test_listmp_json_parts_and_prefix(s3: Any) -> None:
    bucket = s3.bucket()
    ids = _uploads(s3, bucket)
    r = run(["listmp", f"s3://{bucket}", "--json"], s3.env())
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    by_key = {u["key"]: u for u in data["uploads"]}
    assert set(by_key) == set(ids)
    assert by_key["a/one"]["upload_id"] == ids["a/one"]
    assert (by_key["a/one"]["parts"], by_key["a/one"]["size"]) == (2, 5 * 1024 * 1024 + 1000)
    assert (by_key["a/two"]["parts"], by_key["a/two"]["size"]) == (0, 0)
    assert all(u["initiated"].endswith("Z") and u["age_seconds"] >= 0 for u in data["uploads"])
    r = run(["listmp", f"s3://{bucket}/a/", "--json"], s3.env())
    assert sorted(u["key"] for u in json.loads(r.stdout)["uploads"]) == ["a/one", "a/two"]
    human = run(["listmp", f"s3://{bucket}/a/"], s3.env())
    assert human.exit_code == 0 and ids["a/one"] in human.stdout and f"s3://{bucket}/a/one" in human.stdout


def test_listmp_empty_bucket(s3: Any) -> None:
    bucket = s3.bucket()
    r = run(["listmp", f"s3://{bucket}"], s3.env())
    assert r.exit_code == 0 and "no uploads in progress" in r.stdout


def test_abortmp_then_already_gone(s3: Any) -> None:
    bucket = s3.bucket()
    ids = _uploads(s3, bucket)
    r = run(["abortmp", f"s3://{bucket}/a/one", ids["a/one"], "--json"], s3.env())
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["aborted"] is True
    left = {u.key for u in list_uploads(s3.client(), bucket)}
    assert left == {"a/two", "b/three"}
    again = run(["abortmp", f"s3://{bucket}/a/one", ids["a/one"]], s3.env())
    assert again.exit_code == 66, again.output  # S3 cannot tell "aborted before" from "never existed"
    assert "already completed or aborted" in again.stderr
    assert f"s3mpu listmp s3://{bucket}/a/" in again.stderr


def test_abortmp_mistyped_id_is_66_not_success(s3: Any) -> None:
    bucket = s3.bucket()
    _uploads(s3, bucket)
    r = run(["abortmp", f"s3://{bucket}/a/one", "no-such-upload-id"], s3.env())
    assert r.exit_code == 66
    assert "no upload no-such-upload-id" in r.stderr and "mistyped" in r.stderr
    assert len(list_uploads(s3.client(), bucket)) == 3


def test_cleanup_json_reports_parts_and_size(moto_server: Any) -> None:
    bucket = moto_server.bucket()
    _uploads(moto_server, bucket)
    for extra in (["--dry-run"], []):
        r = run(["cleanup", f"s3://{bucket}/a/", "--older-than", "0s", "--json", *extra], moto_server.env())
        assert r.exit_code == 0, r.output
        by_key = {u["key"]: u for u in json.loads(r.stdout)["aborted"]}
        assert (by_key["a/one"]["parts"], by_key["a/one"]["size"]) == (2, 5 * 1024 * 1024 + 1000)
        assert (by_key["a/two"]["parts"], by_key["a/two"]["size"]) == (0, 0)


def test_cleanup_dry_run_then_real(s3: Any) -> None:
    bucket = s3.bucket()
    ids = _uploads(s3, bucket)
    if s3.strict:  # moto reports a fixed Initiated of 2010-11-10 for every upload, so only rclone dates them
        young = run(["cleanup", f"s3://{bucket}", "--json"], s3.env())  # default 7d: all are young
        assert young.exit_code == 0, young.output
        assert json.loads(young.stdout)["aborted"] == [] and len(json.loads(young.stdout)["kept"]) == 3

    dry = run(["cleanup", f"s3://{bucket}/a/", "--older-than", "0s", "--dry-run", "--json"], s3.env())
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True and sorted(u["key"] for u in report["aborted"]) == ["a/one", "a/two"]
    assert {u.upload_id for u in list_uploads(s3.client(), bucket)} == set(ids.values())  # nothing aborted

    real = run(["cleanup", f"s3://{bucket}/a/", "--older-than", "0s"], s3.env())
    assert real.exit_code == 0, real.output
    assert "2 aborted, 0 failed" in real.stdout
    assert [u.key for u in list_uploads(s3.client(), bucket)] == ["b/three"]


def test_cleanup_age_threshold_with_injected_clock(rclone_server: Any) -> None:
    bucket = rclone_server.bucket()
    _uploads(rclone_server, bucket)
    c = rclone_server.client()
    later = datetime.now(timezone.utc) + timedelta(days=8)
    kept = cleanup(c, bucket, older_than=9 * 86400, now=later)
    assert kept.aborted == [] and len(kept.kept) == 3
    done = cleanup(c, bucket, older_than=7 * 86400, now=later)
    assert len(done.aborted) == 3 and list_uploads(c, bucket) == []


class _FailingAborts:
    """A real client whose abort is denied for some keys (S3 policies can do exactly this)."""

    def __init__(self, client: Any, deny: set[str]) -> None:
        self._client, self._deny = client, deny

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def abort_multipart_upload(self, **kw: Any) -> Any:
        if kw["Key"] in self._deny:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "AbortMultipartUpload")
        return self._client.abort_multipart_upload(**kw)


def test_cleanup_reports_failures_per_upload(moto_server: Any) -> None:
    bucket = moto_server.bucket()
    _uploads(moto_server, bucket)
    result = cleanup(_FailingAborts(moto_server.client(), {"a/two"}), bucket, older_than=0)
    assert [u.key for u, _ in result.failed] == ["a/two"]
    assert isinstance(result.failed[0][1], AccessDeniedError)
    assert sorted(u.key for u in result.aborted) == ["a/one", "b/three"]
    assert json.loads(json.dumps(result.to_dict()))["failed"][0]["error"].startswith("aborting upload")


def test_cli_cleanup_partial_failure_exits_2(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = moto_server.bucket()
    _uploads(moto_server, bucket)
    import s3mpu.cli as climod

    real = climod.AppContext.s3_client
    monkeypatch.setattr(climod.AppContext, "s3_client", lambda self: _FailingAborts(real(self), {"b/three"}))
    r = run(["cleanup", f"s3://{bucket}", "--older-than", "0s", "--json"], moto_server.env())
    assert r.exit_code == 2, r.output
    assert len(json.loads(r.stdout)["failed"]) == 1 and "could not be aborted" in r.stderr
    only = run(["cleanup", f"s3://{bucket}", "--older-than", "0s"], moto_server.env())
    assert only.exit_code == 77, only.output  # every abort denied: the cause's own status


def test_admin_commands_need_credentials(moto_server: Any) -> None:
    r = run(["--endpoint-url", moto_server.endpoint, "listmp", "s3://whatever"])
    assert r.exit_code == 78 and "no S3 credentials" in r.stderr


def test_abort_upload_library_missing_ok(moto_server: Any) -> None:
    bucket = moto_server.bucket()
    c = moto_server.client()
    uid = c.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    assert abort_upload(c, bucket, "k", uid) is True
    assert abort_upload(c, bucket, "k", uid) is False


def test_listmp_with_upload_id_lists_parts(s3: Any) -> None:
    """s3cmd's `listmp s3://BUCKET/KEY ID` form: the parts of one upload."""
    bucket = s3.bucket()
    ids = _uploads(s3, bucket)
    r = run(["listmp", f"s3://{bucket}/a/one", ids["a/one"], "--json"], s3.env())
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [(p["number"], p["size"]) for p in data["parts"]] == [(1, 5 * 1024 * 1024), (2, 1000)]
    assert data["size"] == 5 * 1024 * 1024 + 1000 and len(data["parts"][0]["etag"]) == 32
    human = run(["listmp", f"s3://{bucket}/a/one", ids["a/one"]], s3.env())
    assert human.exit_code == 0 and "2 parts" in human.stdout
    gone = run(["listmp", f"s3://{bucket}/a/one", "no-such-upload-id"], s3.env())
    assert gone.exit_code == 66, gone.output
    assert run(["listmp", f"s3://{bucket}", ids["a/one"]], s3.env()).exit_code == 64


def test_cron_exit_codes_unreachable_and_denied(rclone_server: Any) -> None:
    """What a cron wrapper branches on: 75 = try later, 77 = fix permissions/keys."""
    down = run(["--endpoint-url", "http://127.0.0.1:1", "cleanup", "s3://bkt-anything"],
               {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    assert down.exit_code == 75 and "cannot reach S3" in down.stderr
    bucket = rclone_server.bucket()
    denied = run(["cleanup", f"s3://{bucket}"], {**rclone_server.env(), "AWS_SECRET_ACCESS_KEY": "wrong-secret"})
    assert denied.exit_code == 77, denied.output
    missing = run(["cleanup", "s3://no-such-bucket-s3mpu"], rclone_server.env())
    assert missing.exit_code == 66, missing.output


def test_list_uploads_follows_pagination(s3: Any) -> None:
    bucket = s3.bucket()
    c = s3.client()
    ids = {c.create_multipart_upload(Bucket=bucket, Key=f"p/{i}")["UploadId"] for i in range(5)}
    c.create_multipart_upload(Bucket=bucket, Key="q/other")
    listed = list_uploads(c, bucket, "p/", with_parts=False, page_size=2)
    assert {u.upload_id for u in listed} == ids and len(listed) == 5
