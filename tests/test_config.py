"""s3cmd config compatibility and the precedence flags > env > config file > boto3's chain."""
from __future__ import annotations

import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from s3mpu.cli import cli
from s3mpu.config import load_settings, s3_client
from s3mpu.errors import ConfigError

S3CFG = """[default]
access_key = FILEKEY
secret_key = FILESECRET
access_token =
bucket_location = EU
host_base = 127.0.0.1:9000
host_bucket = 127.0.0.1:9000
use_https = False
signature_v2 = False
proxy_host =
proxy_port = 0
# keys s3mpu does not use are simply ignored (s3cmd writes ~60 of them)
gpg_command = /usr/bin/gpg
multipart_chunk_size_mb = 15

[s3mpu]
relay_url = https://relay.example:8080
part_size = 64M
jobs = 6
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_s3cmd_file_path_style(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path / "s3cfg", S3CFG), env={})
    assert (s.access_key, s.secret_key, s.session_token) == ("FILEKEY", "FILESECRET", None)
    assert s.endpoint_url == "http://127.0.0.1:9000" and s.addressing == "path"
    assert s.region == "eu-west-1" and s.signature_version == "s3v4"
    assert s.relay_url == "https://relay.example:8080" and s.part_size == 64 * 1024**2 and s.jobs == 6
    assert s.proxy is None
    assert s.sources["access_key"].startswith("config file")


def test_virtual_host_template_builds_bucket_subdomain(tmp_path: Path) -> None:
    cfg = S3CFG.replace("host_base = 127.0.0.1:9000", "host_base = s3.example.com").replace(
        "host_bucket = 127.0.0.1:9000", "host_bucket = %(bucket)s.s3.example.com").replace("use_https = False", "use_https = True")
    s = load_settings(write(tmp_path / "s3cfg", cfg), env={})
    assert s.addressing == "virtual" and s.endpoint_url == "https://s3.example.com"
    url = s3_client(s).generate_presigned_url("get_object", Params={"Bucket": "media", "Key": "a/b.mov"}, ExpiresIn=60)
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == "media.s3.example.com" and parts.path == "/a/b.mov"


def test_virtual_template_on_another_host_than_host_base(tmp_path: Path) -> None:
    cfg = S3CFG.replace("host_bucket = 127.0.0.1:9000", "host_bucket = %(bucket)s.objects.example.net:8443")
    s = load_settings(write(tmp_path / "s3cfg", cfg), env={})
    url = s3_client(s).generate_presigned_url("get_object", Params={"Bucket": "bk1", "Key": "k"}, ExpiresIn=60)
    assert urlsplit(url).netloc == "bk1.objects.example.net:8443" and url.startswith("http://")


def test_aws_defaults_keep_boto3_endpoint(tmp_path: Path) -> None:
    cfg = S3CFG.replace("host_base = 127.0.0.1:9000", "host_base = s3.amazonaws.com").replace(
        "host_bucket = 127.0.0.1:9000", "host_bucket = %(bucket)s.s3.amazonaws.com")
    s = load_settings(write(tmp_path / "s3cfg", cfg), env={})
    assert s.endpoint_url is None and s.addressing == "virtual"


def test_unsupported_template_is_config_error(tmp_path: Path) -> None:
    cfg = S3CFG.replace("host_bucket = 127.0.0.1:9000", "host_bucket = s3-%(bucket)s.example.com")
    with pytest.raises(ConfigError, match="only the form"):
        load_settings(write(tmp_path / "s3cfg", cfg), env={})


def test_other_s3cmd_keys(tmp_path: Path) -> None:
    cfg = (S3CFG.replace("access_token =", "access_token = SESSIONTOK").replace("signature_v2 = False", "signature_v2 = True")
           .replace("proxy_host =", "proxy_host = proxy.lan").replace("proxy_port = 0", "proxy_port = 3128")
           .replace("bucket_location = EU", "bucket_location = ap-south-1"))
    s = load_settings(write(tmp_path / "s3cfg", cfg), env={})
    assert s.session_token == "SESSIONTOK" and s.signature_version == "s3"
    assert s.proxy == "http://proxy.lan:3128" and s.region == "ap-south-1"


def test_relay_secret_file_in_s3mpu_section(tmp_path: Path) -> None:
    secret = write(tmp_path / "relay.secret", "# current first\nnew-secret\nold-secret\n")
    cfg = S3CFG + f"relay_secret_file = {secret}\n"
    s = load_settings(write(tmp_path / "s3cfg", cfg), env={})
    assert s.relay_secrets == ("new-secret", "old-secret") and s.relay_secret == "new-secret"


@pytest.mark.parametrize("line, what", [("part_size = lots", "part_size"), ("jobs = many", "jobs")])
def test_bad_s3mpu_values_are_config_errors(tmp_path: Path, line: str, what: str) -> None:
    cfg = S3CFG.replace("part_size = 64M", line if what == "part_size" else "part_size = 64M").replace(
        "jobs = 6", line if what == "jobs" else "jobs = 6")
    with pytest.raises(ConfigError, match=what) as info:
        load_settings(write(tmp_path / "s3cfg", cfg), env={})
    assert info.value.exit_code == 78 and "s3cfg" in info.value.message


def test_precedence_flags_env_file(tmp_path: Path) -> None:
    path = write(tmp_path / "s3cfg", S3CFG)
    env = {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "ENVSECRET", "AWS_REGION": "us-west-2"}
    s = load_settings(path, env=env)
    assert (s.access_key, s.secret_key, s.region) == ("ENVKEY", "ENVSECRET", "us-west-2")
    assert s.endpoint_url == "http://127.0.0.1:9000"  # not overridden: stays from the file
    s = load_settings(path, flags={"access_key": "FLAGKEY", "secret_key": "FLAGSECRET", "region": "eu-central-1",
                                   "endpoint_url": "http://127.0.0.1:1"}, env=env)
    assert (s.access_key, s.secret_key, s.region, s.endpoint_url) == (
        "FLAGKEY", "FLAGSECRET", "eu-central-1", "http://127.0.0.1:1")
    assert s.sources["access_key"] == "command line" and s.sources["part_size"].startswith("config file")


def test_env_profile_replaces_file_keys(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path / "s3cfg", S3CFG), env={"AWS_PROFILE": "work"})
    assert s.profile == "work" and s.access_key is None and s.secret_key is None


def test_boto3_chain_when_nothing_else(clean_env: Path) -> None:
    creds = clean_env / "no-aws-credentials"  # the path clean_env points AWS_SHARED_CREDENTIALS_FILE at
    write(creds, "[default]\naws_access_key_id = CHAINKEY\naws_secret_access_key = CHAINSECRET\n")
    s = load_settings()
    assert s.access_key is None and s.config_file is None
    c = s3_client(s)
    assert c._request_signer._credentials.access_key == "CHAINKEY"  # noqa: SLF001
    write(clean_env / ".s3cfg", S3CFG)  # now ~/.s3cfg exists: it wins over the chain
    s = load_settings()
    assert s.config_file == str(clean_env / ".s3cfg")
    assert s3_client(s)._request_signer._credentials.access_key == "FILEKEY"  # noqa: SLF001


def test_aws_profile_gives_its_keys_and_region_and_a_missing_one_is_a_config_error(clean_env: Path) -> None:
    write(clean_env / "no-aws-credentials", "[work]\naws_access_key_id = WORKKEY\naws_secret_access_key = WORKSECRET\n")
    write(clean_env / "no-aws-config", "[profile work]\nregion = eu-west-2\n")
    c = s3_client(load_settings(flags={"profile": "work"}))
    assert c._request_signer._credentials.access_key == "WORKKEY"  # noqa: SLF001
    assert c.meta.region_name == "eu-west-2"
    with pytest.raises(ConfigError, match="cannot use AWS profile 'nosuch'"):
        s3_client(load_settings(flags={"profile": "nosuch"}))


def test_s3cmd_config_env_var(tmp_path: Path) -> None:
    path = write(tmp_path / "elsewhere.cfg", S3CFG)
    assert load_settings(env={"S3CMD_CONFIG": str(path)}).access_key == "FILEKEY"


def test_missing_config_file_exits_78(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["-c", str(tmp_path / "nope.cfg"), "listmp", "s3://bkt"])
    assert r.exit_code == 78 and "config file not found" in r.output


def test_broken_config_file_exits_78(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.cfg", "access_key = no section header\n")
    r = CliRunner().invoke(cli, ["-c", str(path), "listmp", "s3://bkt"])
    assert r.exit_code == 78 and "cannot read config file" in r.output and "Traceback" not in r.output


# -- configure ----------------------------------------------------------------------------------
def _answers(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_configure_writes_0600_and_never_echoes_secret(tmp_path: Path, moto_server: Any) -> None:
    path = tmp_path / "new.s3cfg"
    host = moto_server.endpoint.split("://", 1)[1]
    secret = "TOPSECRETVALUE42"
    answers = _answers(moto_server.access_key, secret, "us-east-1", host, host, "n", "", "", "", "y", "y")
    r = CliRunner().invoke(cli, ["-c", str(path), "configure"], input=answers)
    assert r.exit_code == 0, r.output
    assert secret not in r.output
    assert "Success" in r.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    s = load_settings(path, env={})
    assert (s.access_key, s.secret_key, s.endpoint_url, s.addressing) == (
        moto_server.access_key, secret, moto_server.endpoint, "path")
    assert s.relay_url is None

    # A second run: Enter keeps every value (secret included); unknown keys and sections survive.
    path.write_text(path.read_text() + "\n[other]\nkeep = me\n")
    r = CliRunner().invoke(cli, ["-c", str(path), "configure", "--no-test"],
                           input=_answers("", "", "", "", "", "", "", "https://relay.lan", "", "y"))
    assert r.exit_code == 0, r.output
    assert secret not in r.output
    s = load_settings(path, env={})
    assert s.secret_key == secret and s.relay_url == "https://relay.lan"
    assert "keep = me" in path.read_text()


def test_configure_failed_test_not_saved(tmp_path: Path, moto_server: Any) -> None:
    path = tmp_path / "x.s3cfg"
    answers = _answers("K", "S", "us-east-1", "127.0.0.1:1", "127.0.0.1:1", "n", "", "", "", "y", "n")
    r = CliRunner().invoke(cli, ["-c", str(path), "configure"], input=answers)
    assert r.exit_code == 78 and "Test failed" in r.output and not path.exists()


def test_s3cmd_style_host_flags(tmp_path: Path) -> None:
    """--host is host[:port] as in s3cmd (scheme from use_https); --host-bucket sets virtual addressing."""
    s = load_settings(flags={"endpoint_url": "s3.example.com"}, env={})
    assert s.endpoint_url == "https://s3.example.com"
    s = load_settings(write(tmp_path / "s3cfg", S3CFG), flags={"endpoint_url": "127.0.0.1:7000"}, env={})
    assert s.endpoint_url == "http://127.0.0.1:7000"  # use_https = False in the file
    s = load_settings(flags={"endpoint_url": "https://s3.example.com", "host_bucket": "%(bucket)s.s3.example.com",
                             "addressing": "virtual", "access_key": "AK", "secret_key": "SK"}, env={})
    url = s3_client(s).generate_presigned_url("get_object", Params={"Bucket": "bk2", "Key": "k"}, ExpiresIn=60)
    assert urlsplit(url).netloc == "bk2.s3.example.com"


def test_cli_host_flag_without_scheme(tmp_path: Path, moto_server: Any) -> None:
    """`-c FILE --host 127.0.0.1:PORT`: the file's use_https = False makes it http, as in s3cmd."""
    bucket = moto_server.bucket()
    cfg = S3CFG.replace("FILEKEY", moto_server.access_key).replace("FILESECRET", moto_server.secret_key)
    path = write(tmp_path / "s3cfg", cfg)
    host = moto_server.endpoint.split("://", 1)[1]
    r = CliRunner().invoke(cli, ["-c", str(path), "--host", host, "listmp", f"s3://{bucket}", "--json"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().startswith("{")


def test_signature_v2_from_s3cmd_file_presigns_v2(tmp_path: Path) -> None:
    cfg = S3CFG.replace("signature_v2 = False", "signature_v2 = True")
    s = load_settings(write(tmp_path / "s3cfg", cfg), env={})
    url = s3_client(s).generate_presigned_url("get_object", Params={"Bucket": "b1", "Key": "k"}, ExpiresIn=60)
    assert "AWSAccessKeyId=FILEKEY" in url and "Signature=" in url and "X-Amz-Signature" not in url
    v4 = s3_client(load_settings(write(tmp_path / "v4", S3CFG), env={}))
    assert "X-Amz-Signature=" in v4.generate_presigned_url("get_object", Params={"Bucket": "b1", "Key": "k"}, ExpiresIn=60)


def test_proxy_reaches_the_client(tmp_path: Path) -> None:
    cfg = S3CFG.replace("proxy_host =", "proxy_host = proxy.lan").replace("proxy_port = 0", "proxy_port = 3128")
    client = s3_client(load_settings(write(tmp_path / "s3cfg", cfg), env={}))
    assert client.meta.config.proxies == {"http": "http://proxy.lan:3128", "https": "http://proxy.lan:3128"}


@pytest.mark.parametrize("var", ["S3MPU_CONFIG", "S3CMD_CONFIG"])
def test_either_config_variable_works_for_cli_and_wsgi(tmp_path: Path, var: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "elsewhere.cfg", S3CFG)
    assert load_settings(env={var: str(path)}).access_key == "FILEKEY"
    monkeypatch.setenv(var, str(path))
    r = CliRunner().invoke(cli, ["-v", "listmp", "s3://bkt"])
    # the CLI read the file: its keys (no "no S3 credentials found") and its endpoint (nothing listens there)
    assert r.exit_code == 75 and "127.0.0.1:9000" in r.output and "credentials" not in r.output, r.output
    from s3mpu.relay.wsgi import config_from_env

    cfg = config_from_env({var: str(path), "S3MPU_RELAY_SECRET": "x" * 32, "S3MPU_RELAY_INSECURE_SECRET": "1",
                           "S3MPU_RELAY_PUBLIC_URL": "https://relay.example"})
    assert cfg.settings.access_key == "FILEKEY" and cfg.settings.endpoint_url == "http://127.0.0.1:9000"


def test_s3mpu_config_wins_and_a_named_missing_file_is_78(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ours = write(tmp_path / "ours.cfg", S3CFG)
    assert load_settings(env={"S3MPU_CONFIG": str(ours), "S3CMD_CONFIG": str(tmp_path / "nope")}).access_key == "FILEKEY"
    monkeypatch.setenv("S3MPU_CONFIG", str(tmp_path / "missing.cfg"))
    r = CliRunner().invoke(cli, ["listmp", "s3://bkt"])
    assert r.exit_code == 78 and "config file not found" in r.output and "$S3MPU_CONFIG" in r.output
