"""Settings and credentials: flags > ``AWS_*`` environment > s3cmd-format config file > boto3's chain.

The config file is s3cmd's own INI (``~/.s3cfg``), read unchanged; an ``[s3mpu]`` section holds
our keys (relay URL, relay secret or its file, default part size and jobs). Settings are a plain
value object passed to whatever needs them: there is no global configuration.
"""
from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from s3mpu.errors import ConfigError, S3mpuError
from s3mpu.units import parse_size

ADDRESSING = ("auto", "path", "virtual")
BUCKET_FIELD = "%(bucket)s"


@dataclass(frozen=True)
class Settings:
    """Everything needed to talk to S3 and the relay. ``None`` means "not set, use the default"."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    addressing: str = "auto"
    signature_version: str = "s3v4"
    host_bucket: str | None = None
    proxy: str | None = None
    ca_bundle: str | None = None
    relay_url: str | None = None
    relay_secrets: tuple[str, ...] = ()
    part_size: int | None = None
    jobs: int | None = None
    config_file: str | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)  # where each value came from

    @property
    def relay_secret(self) -> str | None:
        """The current secret (the first); the others are accepted during a rotation."""
        return self.relay_secrets[0] if self.relay_secrets else None

    def has_static_credentials(self) -> bool:
        return bool(self.access_key and self.secret_key)


#: One setting under two names: ours, and s3cmd's (so an s3cmd setup works unchanged). The CLI
#: and the relay's WSGI app read both, ours first.
CONFIG_VARS = ("S3MPU_CONFIG", "S3CMD_CONFIG")


def config_from_env(env: Mapping[str, str]) -> Path | None:
    """The config file named by ``$S3MPU_CONFIG`` or ``$S3CMD_CONFIG``; None when neither is set."""
    for var in CONFIG_VARS:
        if env.get(var):
            return Path(env[var]).expanduser()
    return None


def default_config_path(env: Mapping[str, str]) -> Path | None:
    named = config_from_env(env)
    if named is not None:
        return named
    home = env.get("HOME")
    return Path(home) / ".s3cfg" if home else None


def read_s3cfg(path: Path) -> dict[str, Any]:
    """Translate an s3cmd config file (plus our ``[s3mpu]`` section) into Settings fields."""
    parser = configparser.RawConfigParser()  # raw: host_bucket holds "%(bucket)s" literally
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:  # s3cmd exits EX_CONFIG (78) for a missing -c file too
        raise ConfigError(f"config file not found: {path}", "Check -c, or create one with: s3mpu configure") from None
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        msg = str(exc).splitlines()[0][:200]
        raise ConfigError(f"cannot read config file {path}: {msg}", "Fix the file or write a new one: s3mpu configure") from None
    try:
        return _translate(parser)
    except S3mpuError as exc:
        raise ConfigError(f"config file {path}: {exc.message}", "Fix the value, or rewrite the file: s3mpu configure") from None


def _translate(parser: configparser.RawConfigParser) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if parser.has_section("default"):
        d = {k: v.strip() for k, v in parser.items("default")}
        if d.get("access_key"):
            out["access_key"] = d["access_key"]
        if d.get("secret_key"):
            out["secret_key"] = d["secret_key"]
        if d.get("access_token"):
            out["session_token"] = d["access_token"]
        scheme = "https" if _bool(d.get("use_https", "True")) else "http"
        out["_scheme"] = scheme  # for a scheme-less --host (s3cmd spells it host[:port])
        host_base = d.get("host_base", "")
        if host_base and host_base != "s3.amazonaws.com":
            out["endpoint_url"] = host_base if "://" in host_base else f"{scheme}://{host_base}"
        host_bucket = d.get("host_bucket", "")
        if host_bucket:
            out["host_bucket"] = host_bucket
            out["addressing"] = "virtual" if BUCKET_FIELD in host_bucket else "path"
            if BUCKET_FIELD in host_bucket and "endpoint_url" in out:
                # boto3 puts the bucket in front of the endpoint's host, so the endpoint must be
                # the template's host ("%(bucket)s.s3.example.com" -> https://s3.example.com).
                out["endpoint_url"] = virtual_endpoint(host_bucket, scheme)
        if _bool(d.get("signature_v2", "False")):
            out["signature_version"] = "s3"
        loc = d.get("bucket_location", "")
        if loc:
            out["region"] = {"US": "us-east-1", "EU": "eu-west-1"}.get(loc, loc)
        if d.get("proxy_host"):
            port = d.get("proxy_port", "")
            host = d["proxy_host"]
            host = host if "://" in host else f"http://{host}"
            out["proxy"] = f"{host}:{port}" if port and port != "0" else host
        if d.get("ca_certs_file"):
            out["ca_bundle"] = d["ca_certs_file"]
    if parser.has_section("s3mpu"):
        s = {k: v.strip() for k, v in parser.items("s3mpu")}
        if s.get("relay_url"):
            out["relay_url"] = s["relay_url"]
        secrets = [x.strip() for x in s.get("relay_secret", "").split(",") if x.strip()]
        if s.get("relay_secret_file"):
            secrets += read_secret_file(s["relay_secret_file"])
        if secrets:
            out["relay_secrets"] = tuple(secrets)
        if s.get("part_size"):
            try:
                out["part_size"] = parse_size(s["part_size"])
            except S3mpuError:
                raise ConfigError(f"[s3mpu] part_size = {s['part_size']!r} is not a size (e.g. 64M)") from None
        if s.get("jobs"):
            if not s["jobs"].isdigit() or int(s["jobs"]) < 1:
                raise ConfigError(f"[s3mpu] jobs = {s['jobs']!r} is not a positive whole number")
            out["jobs"] = int(s["jobs"])
    return out


def read_secret_file(path: str) -> list[str]:
    """Secrets, one per line (the first is current; later ones are accepted during rotation)."""
    try:
        text = Path(path).expanduser().read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read relay secret file {path}: {exc.strerror or exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def virtual_endpoint(host_bucket: str, scheme: str = "https") -> str:
    """The endpoint boto3 needs for an s3cmd ``host_bucket`` template such as ``%(bucket)s.s3.example.com``.

    boto3's virtual addressing prepends ``bucket.`` to the endpoint's host; s3cmd's template
    can express other shapes, which boto3 cannot, so those are refused with advice.
    """
    template = host_bucket.split("://", 1)[-1]
    if not template.startswith(BUCKET_FIELD + "."):
        raise ConfigError(f"host_bucket {host_bucket!r}: only the form '%(bucket)s.HOST' is supported",
                          "Use host_bucket = %(bucket)s.HOST, or path-style addressing (host_bucket = host_base).")
    if "://" in host_bucket:
        scheme = host_bucket.split("://", 1)[0]
    return f"{scheme}://{template[len(BUCKET_FIELD) + 1:]}"


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pairs = {"AWS_ACCESS_KEY_ID": "access_key", "AWS_SECRET_ACCESS_KEY": "secret_key",
             "AWS_SESSION_TOKEN": "session_token", "AWS_PROFILE": "profile", "S3MPU_RELAY_URL": "relay_url",
             "AWS_CA_BUNDLE": "ca_bundle"}
    for var, name in pairs.items():
        if env.get(var):
            out[name] = env[var]
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        out["endpoint_url"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        out["region"] = region
    secrets: list[str] = []
    if env.get("S3MPU_RELAY_SECRET"):
        secrets += [x.strip() for x in env["S3MPU_RELAY_SECRET"].split(",") if x.strip()]
    if env.get("S3MPU_RELAY_SECRET_FILE"):
        secrets += read_secret_file(env["S3MPU_RELAY_SECRET_FILE"])
    if secrets:
        out["relay_secrets"] = tuple(secrets)
    return out


def load_settings(config_file: str | os.PathLike[str] | None = None, flags: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Merge the layers in precedence order; ``flags`` holds only options the user actually gave."""
    env = os.environ if env is None else env
    layers: list[tuple[str, dict[str, Any]]] = []
    path = Path(config_file).expanduser() if config_file else default_config_path(env)
    if not config_file and path is not None and config_from_env(env) is not None and not path.exists():
        var = next(v for v in CONFIG_VARS if env.get(v))
        raise ConfigError(f"config file not found: {path} (named by ${var})",
                          f"Set {var} to an existing s3cmd-format file, unset it, or create it with: s3mpu configure")
    if path is not None and (config_file or path.exists()):
        layers.append((f"config file {path}", read_s3cfg(path)))
    layers.append(("environment", from_env(env)))
    layers.append(("command line", {k: v for k, v in (flags or {}).items() if v is not None}))
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, layer in layers:
        # A key pair is taken whole from one layer; a profile named in a higher layer
        # (AWS_PROFILE, --profile) replaces the keys of a lower one.
        if "access_key" in layer or "secret_key" in layer or "profile" in layer:
            for k in ("access_key", "secret_key", "session_token"):
                merged.pop(k, None)
        for k, v in layer.items():
            merged[k] = v
            sources[k] = name
    endpoint = merged.get("endpoint_url")
    if endpoint and "://" not in endpoint:  # s3cmd's --host is host[:port]: use_https decides
        merged["endpoint_url"] = f"{merged.get('_scheme', 'https')}://{endpoint}"
    sources.pop("_scheme", None)
    hb = merged.get("host_bucket")
    if hb and BUCKET_FIELD in hb and sources.get("host_bucket") == "command line" and merged.get("addressing") == "virtual":
        if merged.get("endpoint_url"):
            merged["endpoint_url"] = virtual_endpoint(hb, merged["endpoint_url"].split("://", 1)[0])
        elif "amazonaws.com" not in hb:
            merged["endpoint_url"] = virtual_endpoint(hb)
    if merged.get("addressing", "auto") not in ADDRESSING:
        raise ConfigError(f"addressing must be one of {', '.join(ADDRESSING)}")
    known = {f.name for f in fields(Settings)}
    s = Settings(**{k: v for k, v in merged.items() if k in known}, sources=sources)
    return replace(s, config_file=str(path) if path and path.exists() else None)


def s3_client(settings: Settings, max_pool_connections: int = 10, *, connect_timeout: float = 60,
              read_timeout: float = 60, max_attempts: int = 6) -> Any:
    """A botocore S3 client for these settings (botocore is imported only here, on the admin side).

    ``max_pool_connections`` should be at least the number of threads sharing the client (the
    relay): botocore's default of 10 makes a busier relay drop and reopen connections. The relay
    passes shorter timeouts and fewer attempts so a stalled S3 cannot hold its threads for minutes.
    """
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    # botocore's session, not boto3's: a boto3 session adds only resources and the transfer
    # manager (s3transfer), which s3mpu never uses; skipping their import saves ~10 ms of every admin command.
    core = botocore.session.Session(profile=settings.profile)
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=iso_timestamp)
    try:
        region = settings.region or core.get_config_variable("region") or "us-east-1"
    except BotoCoreError as exc:  # ProfileNotFound, a malformed ~/.aws/config, ...
        raise ConfigError(f"cannot use AWS profile {settings.profile!r}: {exc}") from None
    s3cfg: dict[str, Any] = {"addressing_style": settings.addressing}
    cfg = Config(signature_version=settings.signature_version, s3=s3cfg,
                 proxies={"http": settings.proxy, "https": settings.proxy} if settings.proxy else None,
                 retries={"total_max_attempts": max_attempts, "mode": "standard"}, max_pool_connections=max_pool_connections,
                 connect_timeout=connect_timeout, read_timeout=read_timeout)
    kwargs: dict[str, Any] = {"config": cfg, "region_name": region}
    if settings.endpoint_url:
        kwargs["endpoint_url"] = settings.endpoint_url
    if settings.access_key and settings.secret_key:
        kwargs.update(aws_access_key_id=settings.access_key, aws_secret_access_key=settings.secret_key,
                      aws_session_token=settings.session_token)
    if settings.ca_bundle:
        kwargs["verify"] = settings.ca_bundle
    return core.create_client("s3", **kwargs)


def iso_timestamp(value: Any) -> Any:
    """botocore's timestamp parser, with the ISO-8601 form S3 sends parsed by ``datetime.fromisoformat``.

    Why: botocore hands every timestamp to dateutil (~80 µs each); a ListParts of 10,000 parts
    carries 10,000 of them, which cost the relay ~0.75 s of CPU per complete or status.
    """
    from datetime import datetime

    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    from botocore.utils import parse_timestamp

    return parse_timestamp(value)


def require_credentials(client: Any) -> None:
    """Fail early with exit 78 when no credentials can be found anywhere in the chain."""
    if client._request_signer._credentials is None:  # noqa: SLF001 - botocore has no public probe
        raise ConfigError("no S3 credentials found",
                          "Pass them in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a config file (-c), or run s3mpu configure.")


# -- writing (s3mpu configure) -------------------------------------------------------------------
def config_path_for_write(config_file: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path:
    """Where ``configure`` writes: ``-c FILE``, else ``$S3MPU_CONFIG`` or ``$S3CMD_CONFIG``, else ``~/.s3cfg``."""
    if config_file:
        return Path(config_file).expanduser()
    path = default_config_path(os.environ if env is None else env)
    if path is None:
        raise ConfigError("HOME is not set, so there is no default config file", "Name one with -c FILE.")
    return path


def read_raw(path: Path) -> configparser.RawConfigParser:
    """The file as it is (every s3cmd key kept), or an empty parser when it does not exist yet."""
    parser = configparser.RawConfigParser()
    if path.exists():
        try:
            with path.open(encoding="utf-8") as fh:
                parser.read_file(fh)
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            raise ConfigError(f"cannot read config file {path}: {str(exc).splitlines()[0][:200]}",
                              "Move it aside and run s3mpu configure again.") from None
    return parser


def render(parser: configparser.RawConfigParser, default: Mapping[str, str], ours: Mapping[str, str]) -> str:
    """The file's text with ``[default]`` and ``[s3mpu]`` updated; keys s3mpu does not know are kept."""
    import io

    for section, values in (("default", default), ("s3mpu", ours)):
        if not parser.has_section(section):
            parser.add_section(section)
        for k, v in values.items():
            if v == "" and section == "s3mpu":
                parser.remove_option(section, k)
            else:
                parser.set(section, k, v)
    if parser.has_section("s3mpu") and not parser.items("s3mpu"):
        parser.remove_section("s3mpu")
    buf = io.StringIO()
    parser.write(buf)
    return buf.getvalue()


def settings_from_values(default: Mapping[str, str], ours: Mapping[str, str] | None = None) -> Settings:
    """Settings from config values not yet written (to test a connection before saving)."""
    parser = configparser.RawConfigParser()
    parser.read_dict({"default": dict(default), **({"s3mpu": dict(ours)} if ours else {})})
    values = _translate(parser)
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})
