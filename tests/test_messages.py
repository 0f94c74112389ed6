"""Messages a newcomer meets: each says what happened and the exact next step (issue 12)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from relay_fixtures import API_TOKENS, RELAY_SECRET, relay_settings
from s3mpu.cli import cli
from s3mpu.units import format_duration

MiB = 1024 * 1024


def run(args: list[Any], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def admin_env(server: Any) -> dict[str, str]:
    return {**server.env(), "S3MPU_RELAY_SECRET": RELAY_SECRET}


def test_unknown_command_suggests_the_closest() -> None:
    r = run(["pt"])
    assert r.exit_code == 64 and "No such command 'pt'. Did you mean 'put'?" in r.stderr
    r = run(["lstmp"])
    assert "Did you mean 'listmp'?" in r.stderr


def test_usage_error_with_hint_reads_as_sentences() -> None:
    r = run(["mint", "s3://b/k", "--size", "10Q"])
    assert r.exit_code == 64
    assert "not a size: '10Q'. Use bytes or a binary suffix" in r.stderr


@pytest.mark.parametrize("seconds,shown", [(30 * 86400 - 2, "30d"), (7 * 86400 - 1, "7d"), (7 * 86400, "7d"),
                                           (86400 + 3 * 3600, "1d 3h"), (3600, "1h"), (90, "1m 30s"),
                                           (3599.7, "1h"), (12 * 3600 - 5, "12h"), (0, "0s")])
def test_durations_round_and_drop_zero_units(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_plural() -> None:
    from s3mpu.units import plural

    assert (plural(1, "part"), plural(0, "part"), plural(38, "part")) == ("1 part", "0 parts", "38 parts")


@pytest.fixture
def manifest(moto_server: Any, tmp_path: Path) -> Path:
    bucket = moto_server.bucket()
    out = tmp_path / "m.json"
    r = run(["mint", f"s3://{bucket}/big.bin", "--size", "6M", "--part-size", "5M", "-o", out], admin_env(moto_server))
    assert r.exit_code == 0, r.output
    return out


def test_swapped_put_arguments_are_named(manifest: Path, tmp_path: Path) -> None:
    data = tmp_path / "big.bin"
    data.write_bytes(b"\0" + os.urandom(6 * MiB - 1))  # random bytes start with '{' once in 256 runs: not JSON-like
    r = run(["put", data, manifest, "--limit-rate", "10M"])
    assert r.exit_code == 64, r.output
    assert f"the arguments are swapped: {manifest} is the manifest and {data} the file" in r.stderr
    assert f"s3mpu put {manifest} {data} --limit-rate 10M" in r.stderr
    assert "not valid JSON" not in r.stderr


def test_parts_beyond_the_file_says_which_exist(manifest: Path, tmp_path: Path) -> None:
    data = tmp_path / "big.bin"
    data.write_bytes(os.urandom(6 * MiB))
    r = run(["put", manifest, data, "--parts", "50-60"])
    assert r.exit_code == 64
    assert "outside 1-2" in r.stderr and "--parts 1-2" in r.stderr


def test_mint_refuses_to_overwrite_a_manifest(moto_server: Any, manifest: Path) -> None:
    before = manifest.read_text()
    old = json.loads(before)
    bucket = old["bucket"]
    r = run(["mint", f"s3://{bucket}/other.bin", "--size", "1M", "-o", manifest], admin_env(moto_server))
    assert r.exit_code == 64, r.output
    assert old["upload_id"] in r.stderr and f"s3://{bucket}/big.bin" in r.stderr and "--force" in r.stderr
    assert manifest.read_text() == before
    uploads = moto_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["big.bin"]  # nothing created for the refused mint
    # a refresh of the same upload may replace its own manifest
    r = run(["mint", "--refresh", manifest, "--expires", "1h", "-o", manifest], admin_env(moto_server))
    assert r.exit_code == 0, r.output
    assert json.loads(manifest.read_text())["upload_id"] == old["upload_id"]
    r = run(["mint", f"s3://{bucket}/other.bin", "--size", "1M", "-o", manifest, "--force"], admin_env(moto_server))
    assert r.exit_code == 0, r.output
    assert json.loads(manifest.read_text())["key"] == "other.bin"


def test_missing_bucket_says_what_to_check(moto_server: Any, tmp_path: Path) -> None:
    r = run(["mint", "s3://no-such-bucket-here/k", "--size", "1M", "-o", tmp_path / "m.json"], admin_env(moto_server))
    assert r.exit_code == 66, r.output
    assert "the bucket does not exist" in r.stderr and "Check the bucket name" in r.stderr


def test_unsupported_operations_are_not_retryable() -> None:
    from s3mpu.errors import UnsupportedError
    from s3mpu.s3errors import classify_http, retryable

    body = b"<Error><Code>MethodNotAllowed</Code><Message>not allowed</Message></Error>"
    err = classify_http(405, body, "listing parts")
    assert isinstance(err, UnsupportedError) and err.exit_code == 78
    assert "does not support" in err.message and not retryable(405, "MethodNotAllowed")
    assert not retryable(501, "NotImplemented") and retryable(503, "SlowDown")


def test_request_refusals_carry_their_own_hint(moto_server: Any, tmp_path: Path) -> None:
    from s3mpu.relay.config import ApiToken, token_sha256
    from s3mpu.relay.server import start_relay

    bucket = moto_server.bucket()
    data, big = tmp_path / "f.bin", tmp_path / "big.bin"
    data.write_bytes(os.urandom(1000))
    big.write_bytes(os.urandom(2 * MiB))
    tokens = (ApiToken("alice", token_sha256(API_TOKENS[0]).hex(), bucket, "in/", MiB, 86400),)
    with start_relay(relay_settings(moto_server), api_tokens=tokens) as relay:
        base = ["request", "--relay", relay.url, "--token", API_TOKENS[0]]
        r = run([*base, f"s3://{bucket}/in/f.bin", data, "--expires", "30d"])
        assert r.exit_code == 77 and "at most 1d" in r.stderr and "--expires 1d" in r.stderr, r.output
        assert "mint --refresh" not in r.stderr
        r = run([*base, f"s3://{bucket}/in/f.bin", big])
        assert r.exit_code == 77 and "larger size" in r.stderr and "mint --refresh" not in r.stderr, r.output
        r = run([*base, f"s3://{bucket}/out/f.bin", data])
        assert r.exit_code == 77 and f"s3://{bucket}/in/" in r.stderr and "mint --refresh" not in r.stderr, r.output


@pytest.mark.parametrize("args", [["relay", "--help"], ["request", "--help"]])
def test_help_that_names_the_seed_article_explains_it(args: list[str]) -> None:
    r = run(args)
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "seed article" in text and "grew out of" in text and "POST /presign" in text


def test_readme_explains_the_seed_article_where_it_names_it() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "### The seed article's API" in readme
    section = readme.split("### The seed article's API", 1)[1].split("\n## ", 1)[0]
    assert "grew out of an article" in section and "POST /presign" in section and "--seed-api BUCKET" in section


def test_signature_v2_help_names_v2_only_stores_not_s3rver() -> None:
    r = run(["--help"])
    text = " ".join(r.output.split())
    assert "old Ceph RGW and other stores without SigV4" in text and "s3rver" not in text


def test_expiry_beyond_sigv4_is_shown_as_given(moto_server: Any, tmp_path: Path) -> None:
    r = run(["mint", f"s3://{moto_server.bucket()}/k", "--size", "1M", "--expires", "30d", "-o", tmp_path / "m.json"],
            admin_env(moto_server))
    assert r.exit_code == 64, r.output
    assert "--expires 30d is beyond SigV4's 7-day limit" in r.stderr and "29d" not in r.stderr


def test_rerun_hint_quotes_the_command_but_not_a_secret_key() -> None:
    from s3mpu.cli.cmd_user import command_line

    assert command_line(["put", "m.json", "my file.bin", "--limit-rate", "10M", "-j", "4"]) == \
        "s3mpu put m.json 'my file.bin' --limit-rate 10M -j 4"
    assert command_line(["--secret-key", "S3CR3T", "put", "m.json", "f"]) == "s3mpu --secret-key REDACTED put m.json f"
    assert "S3CR3T" not in command_line(["--secret-key=S3CR3T", "put", "m.json", "f"])
