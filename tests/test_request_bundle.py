"""``s3mpu request s3://B/PREFIX/ DIR`` up to the written bundle: plan, one /v1/mint, the kept bundle, and
the hand-over to ``put`` (a stand-in command here: tests/e2e/test_request_bundle_flow.py runs the real put)."""
from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from relay_fixtures import API_TOKENS
from s3mpu import bundle as bundles
from s3mpu.cli import cli
from s3mpu.cli.cmd_request_bundle import plan_body
from s3mpu.plan_dir import plan_dir
from s3mpu.relay.config import ApiToken, token_sha256
from s3mpu.s3uri import S3Uri
from servers import S3Server

MiB = 1024 * 1024
CALLS: list[tuple[str, str, dict[str, Any]]] = []


@click.command()
@click.argument("manifest_file")
@click.argument("file")
@click.option("-j", "--jobs", type=int)
@click.option("--retries", type=int, default=5)
@click.option("--limit-rate", type=int)
@click.option("--progress", "progress_mode", default="auto")
def fake_put(manifest_file: str, file: str, **options: Any) -> None:
    """Stands in for ``put`` until put takes bundles: records what request hands it."""
    CALLS.append((manifest_file, file, options))


@pytest.fixture
def stub_put(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, dict[str, Any]]]:
    monkeypatch.setitem(__import__("s3mpu.cli", fromlist=["COMMANDS"]).COMMANDS, "put", "test_request_bundle:fake_put")
    CALLS.clear()
    return CALLS


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "card"
    for rel, data in {"a.txt": b"a", "DCIM/x y \u00e9.jpg": b"j" * 1000, "big.bin": b"b" * (9 * MiB),
                      ".hidden": b"", }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def relay_url(moto_server: S3Server, relay_for: Any) -> tuple[str, str]:
    bucket = moto_server.bucket()
    api = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "in/", 64 * MiB, 86400, max_files=10),)
    return relay_for(moto_server, api_tokens=api).url, bucket


def request(relay: str, target: str, folder: Path, *extra: Any) -> Any:
    return CliRunner().invoke(cli, ["request", target, str(folder), "--relay", relay, *map(str, extra)],
                              env={"S3MPU_API_TOKEN": API_TOKENS[0]})


def uploads(s3: S3Server, bucket: str) -> list[str]:
    return sorted(u["UploadId"] for u in s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_request_mints_keeps_the_bundle_and_hands_it_to_put(moto_server: S3Server, relay_url: tuple[str, str],
                                                             folder: Path, tmp_path: Path, stub_put: list[Any]) -> None:
    url, bucket = relay_url
    saved = tmp_path / "card.bundle.json"
    r = request(url, f"s3://{bucket}/in/card/", folder, "--save-manifest", saved, "-j", "3", "--expires", "1h")
    assert r.exit_code == 0, r.output
    assert stub_put == [(str(saved), str(folder), {"jobs": 3, "retries": 5, "limit_rate": None,
                                                   "progress_mode": "auto"})]
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    b = bundles.load(saved)
    assert sorted(o.key for o in b.objects) == sorted(f"in/card/{p}" for p in
                                                      ["a.txt", "DCIM/x y \u00e9.jpg", "big.bin", ".hidden"])
    a = next(o for o in b.objects if o.path == "a.txt")
    assert a.md5 == hashlib.md5(b"a").hexdigest() and a.content_type == "text/plain"  # content-bound, type guessed
    big = next(o for o in b.objects if o.path == "big.bin")
    assert big.manifest is not None and all(p.md5 for p in big.manifest.parts)
    assert "minted s3://" in r.stderr and "X-Amz-Signature" not in r.output
    assert len(uploads(moto_server, bucket)) == 1


def test_rerun_resumes_the_kept_bundle_and_a_changed_folder_mints_afresh(
        moto_server: S3Server, relay_url: tuple[str, str], folder: Path, stub_put: list[Any]) -> None:
    url, bucket = relay_url
    target = f"s3://{bucket}/in/card/"
    assert request(url, target, folder).exit_code == 0
    kept = Path(stub_put[0][0])
    assert kept.is_file() and "requests" in kept.parts  # the state directory, as for one file
    first = uploads(moto_server, bucket)
    r = request(url, target, folder)
    assert r.exit_code == 0 and "resuming the bundle" in r.stderr
    assert uploads(moto_server, bucket) == first and stub_put[1][0] == str(kept)
    (folder / "new.txt").write_bytes(b"n")
    r = request(url, target, folder)
    assert r.exit_code == 0 and "no longer holds the files" in r.stderr
    after = uploads(moto_server, bucket)
    assert len(after) == 1 and after != first  # the old bundle's upload was aborted, a new one minted
    assert "new.txt" in {o.path for o in bundles.load(kept).objects}


@pytest.mark.parametrize("target, what, extra, code, words", [
    ("s3://{b}/in/card/", "file", [], 64, "not one"),
    ("s3://{b}/in/card", "folder", [], 64, "ending in '/'"),
    ("s3://{b}/in/card/", "folder", ["--size", "5"], 64, "--size"),
    ("s3://{b}/out/", "folder", [], 77, "in/*"),
])
def test_refusals(relay_url: tuple[str, str], folder: Path, tmp_path: Path, stub_put: list[Any], target: str,
                  what: str, extra: list[str], code: int, words: str) -> None:
    url, bucket = relay_url
    path = folder if what == "folder" else folder / "a.txt"
    r = request(url, target.format(b=bucket), path, "--save-manifest", tmp_path / "b.json", *extra)
    assert r.exit_code == code, r.output
    assert words in r.output and stub_put == [] and not (tmp_path / "b.json").exists()


def test_a_relay_answering_another_grant_is_refused(monkeypatch: pytest.MonkeyPatch, relay_url: tuple[str, str],
                                                     folder: Path, tmp_path: Path, stub_put: list[Any]) -> None:
    from s3mpu.user.relayclient import RelayClient

    real = RelayClient.mint

    def shrink(self: Any, token: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "objects": body["objects"][:1]}
        return real(self, token, body)

    monkeypatch.setattr(RelayClient, "mint", shrink)
    url, bucket = relay_url
    r = request(url, f"s3://{bucket}/in/card/", folder, "--save-manifest", tmp_path / "b.json")
    assert r.exit_code == 65 and "does not grant what was asked" in r.output and stub_put == []


def test_plan_body_shape(folder: Path) -> None:
    p = plan_dir(folder, part_size=5 * MiB)
    body = plan_body(S3Uri("b", "in/"), p, expires=None, content_type=None, metadata={"k": "v"})
    assert set(body) == {"bucket", "prefix", "objects", "metadata"}
    big = next(o for o in body["objects"] if o["path"] == "big.bin")
    assert big == {"path": "big.bin", "size": 9 * MiB, "part_size": 5 * MiB, "md5s": list(
        next(f for f in p.files if f.path == "big.bin").md5s or ())}
    json.dumps(body)


def test_the_relay_s_bundle_uploads_on_rclone_with_the_single_file_pipeline(
        rclone_server: S3Server, relay_for: Any, folder: Path, tmp_path: Path, stub_put: list[Any]) -> None:
    """Independent of ``put BUNDLE DIR``: each single PUT with exactly its listed headers, each multipart object
    through today's upload pipeline and the relay; rclone checks every signature."""
    import base64

    import urllib3

    from s3mpu.user.upload import upload

    bucket = rclone_server.bucket()
    api = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "in/", 64 * MiB, 86400),)
    url = relay_for(rclone_server, api_tokens=api).url
    saved = tmp_path / "b.json"
    r = request(url, f"s3://{bucket}/in/card/", folder, "--save-manifest", saved, "--part-size", "5M")
    assert r.exit_code == 0, r.output
    http = urllib3.PoolManager(retries=False)
    for o in bundles.load(saved).objects:
        data = (folder / o.path).read_bytes()
        if o.manifest is not None:
            assert upload(o.manifest, folder / o.path, state_dir=tmp_path / "state").completed
            continue
        headers = {**o.headers, "Content-Length": str(len(data)),
                   "Content-MD5": base64.b64encode(bytes.fromhex(o.md5 or "")).decode()}
        assert http.request("PUT", o.url or "", body=data, headers=headers).status == 200, o.path
    client = rclone_server.client()
    for rel in ("a.txt", "DCIM/x y \u00e9.jpg", "big.bin", ".hidden"):
        assert client.get_object(Bucket=bucket, Key=f"in/card/{rel}")["Body"].read() == (folder / rel).read_bytes()
