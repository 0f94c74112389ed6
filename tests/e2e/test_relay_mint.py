"""Online minting (``POST /v1/mint``) on real servers: policy first, nothing created when refused."""
from __future__ import annotations

import pytest

from relay_fixtures import API_TOKENS, relay_settings
from s3mpu.errors import AccessDeniedError, DataError
from s3mpu.manifest import Manifest
from s3mpu.user.relayclient import RelayClient
from s3mpu.relay.config import ApiToken, token_sha256
from s3mpu.relay.server import start_relay

pytestmark = pytest.mark.usefixtures("no_secrets_in_logs")
MiB = 1024 * 1024
ALICE, BOB = API_TOKENS


def _tokens(bucket: str) -> tuple[ApiToken, ...]:
    return (ApiToken("alice", token_sha256(ALICE).hex(), bucket, "in/", 64 * MiB, 86400),
            ApiToken("bob", token_sha256(BOB).hex(), "elsewhere", "", None, 7 * 86400))


def _uploads(s3, bucket: str) -> list:
    """In-progress uploads (rclone answers NoSuchUpload for a bucket that has none)."""
    try:
        return s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    except Exception as exc:
        if getattr(exc, "response", {}).get("Error", {}).get("Code") == "NoSuchUpload":
            return []
        raise


def test_mint_upload_complete(s3, make_data) -> None:
    from s3mpu.user.upload import upload

    bucket = s3.bucket()
    path = make_data(9 * MiB + 3, seed=4)
    with start_relay(relay_settings(s3), api_tokens=_tokens(bucket)) as relay:
        doc = RelayClient(relay.url).mint(ALICE, {"bucket": bucket, "key": "in/a.bin", "size": path.stat().st_size,
                                                  "part_size": 5 * MiB, "expires": "2h",
                                                  "content_type": "application/x-test", "metadata": {"who": "alice"}})
        m = Manifest.from_dict(doc)
        assert m.relay.url == relay.url and m.relay.token and len(m.parts) == 2
        assert 7000 < m.seconds_left() <= 7200
        assert [u["UploadId"] for u in _uploads(s3, bucket)] == [m.upload_id]  # the listing sees uploads
        result = upload(m, path)
        assert result.completed and result.size == path.stat().st_size
    assert s3.client().get_object(Bucket=bucket, Key="in/a.bin")["Body"].read() == path.read_bytes()
    head = s3.client().head_object(Bucket=bucket, Key="in/a.bin")
    assert {k.lower(): v for k, v in head["Metadata"].items()}.get("who") == "alice"  # rclone says "Who"


@pytest.mark.parametrize(("token", "body", "why"), [
    (ALICE, {"key": "out/x", "size": 10}, "may not mint"),  # wrong prefix
    (ALICE, {"key": "in/x", "size": 65 * MiB}, "at most"),  # too large
    (ALICE, {"key": "in/x", "max_size": 65 * MiB}, "at most"),  # too large a maximum
    (ALICE, {"key": "in/x", "size": 10, "expires": "2d"}, "expiry"),  # too long
    (BOB, {"key": "in/x", "size": 10}, "may not mint"),  # another bucket's token
    ("not-a-token", {"key": "in/x", "size": 10}, "not valid"),
    ("", {"key": "in/x", "size": 10}, "required"),
])
def test_policy_refusals_create_nothing(s3, token, body, why) -> None:
    bucket = s3.bucket()
    with start_relay(relay_settings(s3), api_tokens=_tokens(bucket)) as relay:
        with pytest.raises(AccessDeniedError, match=why) as info:
            RelayClient(relay.url).mint(token, {"bucket": bucket, **body})
        assert info.value.exit_code == 77
    assert _uploads(s3, bucket) == []


def test_bad_requests_are_400_and_create_nothing(moto_server) -> None:
    bucket = moto_server.bucket()
    with start_relay(relay_settings(moto_server), api_tokens=_tokens(bucket)) as relay:
        client = RelayClient(relay.url)
        for body in ({"key": "in/x"}, {"key": "in/x", "size": 1, "max_size": 2}, {"key": "in/x", "size": "lots"},
                     {"key": "in/x", "size": 10, "part_size": 1024, "md5s": ["zz"]},
                     {"key": "in/x", "size": 30 * MiB, "part_size": 1 * MiB}, {"size": 1}):
            with pytest.raises(DataError, match="400"):
                client.mint(ALICE, {"bucket": bucket, **body})
    assert _uploads(moto_server, bucket) == []


def test_mint_disabled_without_tokens(moto_server, relay_for) -> None:
    bucket = moto_server.bucket()
    with pytest.raises(AccessDeniedError, match="not enabled"):
        RelayClient(relay_for(moto_server).url).mint(ALICE, {"bucket": bucket, "key": "in/x", "size": 1})
    assert _uploads(moto_server, bucket) == []
