"""The relay grants exactly what a manifest or API token says (issue 10, part A), over real HTTP.

Every test talks to a relay served on a socket with a real S3 server behind it; the ones about
signatures, lengths and MD5 bindings run on rclone (it checks them), the rest on both servers.
"""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
import urllib3

from relay_fixtures import API_TOKENS, RELAY_SECRET, mint_for, relay_settings
from s3mpu import token as tokens
from s3mpu.admin.completion import list_parts
from s3mpu.errors import AccessDeniedError, DataError, TempFailError
from s3mpu.manifest import Manifest
from s3mpu.relay.config import ApiToken, token_sha256
from s3mpu.relay.server import start_relay
from s3mpu.user.relayclient import RelayClient, refresh_manifest
from s3mpu.user.tail import signed_length

pytestmark = pytest.mark.usefixtures("no_secrets_in_logs")
MiB = 1024 * 1024
PS = 5 * MiB
ALICE, BOB = API_TOKENS
HTTP = urllib3.PoolManager(retries=False)


def _policy(bucket: str, **changes) -> tuple[ApiToken, ...]:
    fields = {"name": "alice", "sha256": token_sha256(ALICE).hex(), "bucket": bucket, "prefix": "in/",
              "max_size": 20 * MiB, "max_expires": 3600}
    fields.update(changes)  # max_uploads only when a test sets it
    return (ApiToken(**fields),)


def _put(url: str, body: bytes, md5_of: bytes | None = None) -> int:
    """PUT ``body`` to a presigned part URL with its Content-MD5 (or ``md5_of``'s); the HTTP status."""
    md5 = base64.b64encode(hashlib.md5(body if md5_of is None else md5_of).digest()).decode()
    return HTTP.request("PUT", url, body=body, headers={"Content-MD5": md5}).status


def _post(url: str, path: str, doc: dict) -> tuple[int, dict]:
    r = HTTP.request("POST", url + path, body=json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
    return r.status, json.loads(r.data)


def _stored(s3, m: Manifest) -> int:
    return sum(p["size"] for p in list_parts(s3.client(), m.bucket, m.key, m.upload_id))


def _in_progress(s3, bucket: str) -> int:
    from s3mpu.admin.housekeeping import list_uploads

    return len(list_uploads(s3.client(), bucket, with_parts=False))


# -- finding 3: /v1/refresh stays inside the minting policy ----------------------------------
def test_refresh_obeys_the_minting_policys_cap(s3) -> None:
    bucket = s3.bucket()
    with start_relay(relay_settings(s3), api_tokens=_policy(bucket)) as relay:
        client = RelayClient(relay.url)
        m = Manifest.from_dict(client.mint(ALICE, {"bucket": bucket, "key": "in/a", "size": 6 * MiB,
                                                   "part_size": PS, "expires": "1h"}))
        ident = tokens.decode_unverified(m.relay.token)
        assert (ident.policy, ident.policy_max_expires) == ("alice", 3600)
        for _ in range(2):  # again and again: never beyond the policy's hour
            m = Manifest.from_dict(client.refresh(m.relay.token, expires="7d"))
            assert 3500 < m.seconds_left() <= 3600, m.expires_at
            assert tokens.decode_unverified(m.relay.token).policy == "alice"


def test_refresh_refused_once_the_api_token_is_removed(s3) -> None:
    bucket = s3.bucket()
    with start_relay(relay_settings(s3), api_tokens=_policy(bucket)) as relay:
        m = Manifest.from_dict(RelayClient(relay.url).mint(ALICE, {"bucket": bucket, "key": "in/a", "size": 6 * MiB,
                                                                   "part_size": PS, "expires": "1h"}))
    # the same relay secret, restarted with a tokens file that no longer has alice (only bob)
    bob = (ApiToken("bob", token_sha256(BOB).hex(), bucket, "in/", None, 7 * 86400),)
    for options in ({"api_tokens": bob}, {}):
        with start_relay(relay_settings(s3), **options) as relay:
            status, doc = _post(relay.url, "/v1/refresh", {"token": m.relay.token, "expires": "1h"})
            assert status == 403 and doc["error"] == "forbidden", doc
            assert "'alice'" in doc["message"] and "no longer" in doc["message"]
    assert _in_progress(s3, bucket) == 1  # nothing was destroyed


def test_refresh_of_an_admin_minted_manifest_keeps_the_relays_cap(s3, relay) -> None:
    m = mint_for(s3, s3.bucket(), "obj", relay.url, size=6 * MiB, part_size=PS,
                 expires=datetime.now(timezone.utc) + timedelta(hours=1))
    assert tokens.decode_unverified(m.relay.token).policy is None
    new = Manifest.from_dict(RelayClient(relay.url).refresh(m.relay.token, expires="7d"))
    assert 7 * 86400 - 120 < new.seconds_left() <= 7 * 86400


# -- finding 4: /v1/refresh keeps a plan's Content-MD5 binding --------------------------------
def test_refresh_keeps_the_plans_md5_binding(rclone_server) -> None:
    s3 = rclone_server
    data = bytes(range(256)) * (PS // 256) + b"tail-bytes"
    md5s = [hashlib.md5(data[i:i + PS]).hexdigest() for i in range(0, len(data), PS)]
    with start_relay(relay_settings(s3)) as relay:
        m = mint_for(s3, s3.bucket(), "planned", relay.url, size=len(data), part_size=PS, md5s=md5s)
        client = RelayClient(relay.url)
        with pytest.raises(DataError, match="400.*MD5s"):  # a refresh without the list
            client.refresh(m.relay.token)
        with pytest.raises(AccessDeniedError, match="403.*differ"):  # with another list
            client.refresh(m.relay.token, md5s=[hashlib.md5(b"other").hexdigest(), md5s[1]])
        new = Manifest.from_dict(refresh_manifest(client, m, "1h"))
    assert [p.md5 for p in new.parts] == md5s
    other = b"x" * PS
    assert _put(new.parts[0].url, other) in (400, 403)  # other bytes with their own MD5: S3 refuses them
    assert _put(new.parts[0].url, data[:PS]) == 200
    assert tokens.decode_unverified(new.relay.token).md5s_sha256 == tokens.md5s_digest(md5s)


def test_admin_refresh_refuses_a_manifest_edited_to_drop_its_md5s(moto_server) -> None:
    from dataclasses import replace

    from s3mpu.admin.mint import refresh

    data = b"a" * (PS + 10)
    md5s = [hashlib.md5(data[:PS]).hexdigest(), hashlib.md5(data[PS:]).hexdigest()]
    m = mint_for(moto_server, moto_server.bucket(), "planned", "http://relay.invalid", size=len(data),
                 part_size=PS, md5s=md5s)
    edited = m.with_updates(parts=tuple(replace(p, md5=None) for p in m.parts))
    with pytest.raises(DataError, match="MD5s differ"):
        refresh(moto_server.client(), edited, relay_secret=RELAY_SECRET)
    assert [p.md5 for p in refresh(moto_server.client(), m, relay_secret=RELAY_SECRET).parts] == md5s


# -- finding 5: max-size manifests store at most their maximum --------------------------------
def test_max_size_policy_bounds_the_bytes_stored(rclone_server) -> None:
    """Under a 20 MiB max-size policy no sequence of requests stores more than 20 MiB + one part."""
    s3 = rclone_server
    bucket = s3.bucket()
    with start_relay(relay_settings(s3), api_tokens=_policy(bucket, max_uploads=2)) as relay:
        client = RelayClient(relay.url)
        m = Manifest.from_dict(client.mint(ALICE, {"bucket": bucket, "key": "in/big", "max_size": 20 * MiB,
                                                   "part_size": PS, "expires": "1h"}))
        big = b"B" * (8 * MiB)
        for p in m.parts:  # oversize parts: every URL is signed for one full part
            assert _put(p.url, big) in (400, 403)
        assert len(m.parts) == 4 and all(signed_length(p.url) for p in m.parts)
        with pytest.raises(AccessDeniedError, match="more than this upload's maximum"):
            client.tail(m.relay.token, 20 * MiB + 1)  # a tail beyond the maximum
        first = client.tail(m.relay.token, 3 * PS + 7)  # part 4 twice, for two lengths
        second = client.tail(m.relay.token, 3 * PS + PS)
        assert (first["number"], first["size"], second["number"], second["size"]) == (4, 7, 4, PS)
        assert _put(first["url"], b"B" * (PS + 1)) in (400, 403)
        assert _put(first["url"], b"t" * 7) == 200
        refreshed = Manifest.from_dict(client.refresh(m.relay.token, expires="1h"))
        assert all(_put(p.url, big) in (400, 403) for p in refreshed.parts)  # refresh keeps the lengths
        for p in refreshed.parts[:3]:  # fill every part as far as the URLs allow (part 4 holds 7 bytes)
            assert _put(p.url, b"F" * p.size) == 200
        assert _put(second["url"], b"S" * PS) in (200, 501)  # rclone refuses a re-upload with other bytes
        status, doc = _post(relay.url, "/v1/tail", {"token": refreshed.relay.token, "size": 10 ** 12})
        assert status == 403 and doc["error"] == "forbidden"
        assert _stored(s3, m) <= 20 * MiB + PS
        # repeated mints: at most max_uploads in progress, the next one gets 429 and creates nothing
        client.mint(ALICE, {"bucket": bucket, "key": "in/second", "max_size": 20 * MiB, "part_size": PS})
        for key in ("in/third", "in/fourth"):
            with pytest.raises(TempFailError, match="429 too_many_uploads.*at most 2 upload"):
                client.mint(ALICE, {"bucket": bucket, "key": key, "max_size": 20 * MiB, "part_size": PS})
        assert _in_progress(s3, bucket) == 2


def test_max_uploads_counts_from_s3_not_memory(s3) -> None:
    """Two relay instances (no shared memory) together grant no more than max_uploads; 429 is clear JSON."""
    bucket = s3.bucket()
    policy = _policy(bucket, max_uploads=2)
    with start_relay(relay_settings(s3), api_tokens=policy) as a, start_relay(relay_settings(s3),
                                                                              api_tokens=policy) as b:
        body = {"bucket": bucket, "size": 10, "part_size": PS}
        RelayClient(a.url).mint(ALICE, {**body, "key": "in/1"})
        m2 = Manifest.from_dict(RelayClient(b.url).mint(ALICE, {**body, "key": "in/2"}))
        r = HTTP.request("POST", a.url + "/v1/mint", body=json.dumps({**body, "key": "in/3"}).encode(),
                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {ALICE}"})
        doc = json.loads(r.data)
        assert r.status == 429 and doc["error"] == "too_many_uploads", doc
        assert "at most 2 upload(s) in progress" in doc["message"] and "abort" in doc["hint"]
        assert _in_progress(s3, bucket) == 2
        RelayClient(b.url).abort(m2.relay.token)  # one finished: the next mint fits again
        RelayClient(a.url).mint(ALICE, {**body, "key": "in/3"})
    assert _in_progress(s3, bucket) == 2


def test_put_of_a_max_size_manifest_asks_the_relay_for_the_last_part(s3, relay, make_data) -> None:
    from s3mpu.user.upload import upload

    bucket = s3.bucket()
    m = mint_for(s3, bucket, "maxed", relay.url, max_size=4 * PS, part_size=PS)
    assert all(signed_length(p.url) for p in m.parts) and [p.size for p in m.parts] == [PS] * 4
    path = make_data(2 * PS + 12345, seed=3)
    result = upload(m, path)
    assert result.completed and result.size == path.stat().st_size
    assert s3.client().get_object(Bucket=bucket, Key="maxed")["Body"].read() == path.read_bytes()


def test_max_size_without_a_relay_keeps_unbound_urls_and_info_says_so(moto_server, e2e) -> None:
    manifest = e2e.mint(max_size=20 * MiB)
    m = Manifest.from_dict(json.loads(manifest.read_text()))
    assert not any(signed_length(p.url) for p in m.parts)
    r = e2e.cli(["info", manifest])
    assert r.code == 0 and "not bound" in r.stdout, r.stdout
    with_relay = e2e.mint(max_size=20 * MiB, relay="http://relay.invalid")
    r = e2e.cli(["info", with_relay])
    assert r.code == 0 and "not bound" not in r.stdout, r.stdout
    assert e2e.cli(["info", "--json", manifest]).json["lengths_bound"] is False


def test_mint_refuses_a_plan_with_max_size(moto_server) -> None:
    bucket = moto_server.bucket()
    with start_relay(relay_settings(moto_server), api_tokens=_policy(bucket)) as relay:
        with pytest.raises(DataError, match="400.*fixes the size"):
            RelayClient(relay.url).mint(ALICE, {"bucket": bucket, "key": "in/x", "max_size": 10 * MiB,
                                                "part_size": PS, "md5s": ["0" * 32, "1" * 32]})
    assert _in_progress(moto_server, bucket) == 0


def test_tail_of_an_exact_manifest_is_refused(moto_server, relay_for) -> None:
    relay = relay_for(moto_server)
    m = mint_for(moto_server, moto_server.bucket(), "exact", relay.url, size=PS + 1, part_size=PS)
    status, doc = _post(relay.url, "/v1/tail", {"token": m.relay.token, "size": 3})
    assert status == 400 and "exact size" in doc["message"]
    for bad in ("3", -1, None, True):
        status, doc = _post(relay.url, "/v1/tail", {"token": m.relay.token, "size": bad})
        assert status == 400, (bad, doc)


# -- finding 8: strict tokens over HTTP, and complete with a partial list ----------------------
def test_altered_spellings_of_a_token_are_refused(s3, relay) -> None:
    m = mint_for(s3, s3.bucket(), "obj", relay.url, size=10, part_size=PS)
    token = m.relay.token
    assert _post(relay.url, "/v1/status", {"token": token})[0] == 200
    prefix, payload, mac = token.split(".")
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(mac[-1])
    same_bits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last ^ 1]
    spellings = [f"{token}=", f"{token}==", f"{prefix}.{payload}.{mac[:-1]}{same_bits}",
                 f"{prefix}.{payload}.{mac[:5]}!{mac[5:]}", f"{prefix}.{payload}.{mac.replace('-', '+').replace('_', '/')}",
                 f"{prefix}.{payload}=.{mac}", f"{prefix}.{payload}.{mac[:10]}\n{mac[10:]}"]
    if "-" not in mac and "_" not in mac:
        spellings.pop(4)
    for spelling in spellings:
        status, doc = _post(relay.url, "/v1/status", {"token": spelling})
        assert status == 401 and doc["error"] == "unauthorized", (spelling, doc)


def test_complete_with_a_partial_list_of_a_max_size_upload_is_refused(rclone_server, relay_for) -> None:
    s3 = rclone_server
    relay = relay_for(s3)
    m = mint_for(s3, s3.bucket(), "partial", relay.url, max_size=4 * PS, part_size=PS)
    sent = []
    for p in m.parts[:3]:
        body = bytes([p.number]) * PS
        assert _put(p.url, body) == 200
        sent.append({"number": p.number, "etag": hashlib.md5(body).hexdigest()})
    for doc in ({"parts": sent[:2]}, {"parts": sent[:2], "size": 2 * PS}, {"size": PS}):
        status, reply = _post(relay.url, "/v1/complete", {"token": m.relay.token, **doc})
        assert status in (409, 422) and "beyond" in reply["message"], reply
    assert [p["number"] for p in list_parts(s3.client(), m.bucket, m.key, m.upload_id)] == [1, 2, 3]  # intact
    status, reply = _post(relay.url, "/v1/complete", {"token": m.relay.token, "parts": sent, "size": 3 * PS})
    assert status == 200 and reply["size"] == 3 * PS


def test_a_mint_racing_past_the_count_is_aborted_again(s3) -> None:
    """Another relay's mint lands between the count and the create: ours sees it afterwards and backs off."""
    bucket = s3.bucket()
    client = s3.client()
    admin = s3.client()
    raced: list[str] = []

    def concurrent_mint(**_kw) -> None:
        if not raced:
            raced.append(admin.create_multipart_upload(Bucket=bucket, Key="in/racer")["UploadId"])

    client.meta.events.register("before-call.s3.CreateMultipartUpload", concurrent_mint)
    with start_relay(relay_settings(s3), api_tokens=_policy(bucket, max_uploads=1),
                     s3_client_factory=lambda: client) as relay:
        with pytest.raises(TempFailError, match="429 too_many_uploads"):
            RelayClient(relay.url).mint(ALICE, {"bucket": bucket, "key": "in/mine", "size": 10, "part_size": PS})
    from s3mpu.admin.housekeeping import list_uploads

    assert [(u.key, u.upload_id) for u in list_uploads(s3.client(), bucket, with_parts=False)] == [("in/racer", raced[0])]
