"""Relay settings and the API-token policy for online minting (no Flask, no I/O at request time).

API tokens are bearer secrets; the tokens file may hold them in clear (``"token"``) or only
their SHA-256 (``"sha256"``) so the file itself is not a credential. A presented token is
hashed and compared with every configured hash in constant time, without early exit.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3mpu.config import Settings
from s3mpu.relay.options import ServiceOptions
from s3mpu.errors import AccessDeniedError, ConfigError, NoInputError, TempFailError, UsageError
from s3mpu.units import MiB, parse_duration, parse_size

DEFAULT_MAX_BODY = 2 * MiB  # a complete with 10,000 parts and their ETags is ~700 KB
DEFAULT_TOKEN_GRACE = 86400
DEFAULT_REFRESH_GRACE = 7 * 86400
DEFAULT_MAX_REFRESH_EXPIRES = 7 * 86400
# Connection limits (waitress): a slow client may hold a connection for at most REQUEST_TIMEOUT
# while sending one request, and an idle keep-alive one for CHANNEL_TIMEOUT.
DEFAULT_CONNECTION_LIMIT = 250
DEFAULT_CHANNEL_TIMEOUT = 30
DEFAULT_REQUEST_TIMEOUT = 20
# The relay's own S3 calls: a stalled S3 costs at most about attempts x read timeout.
DEFAULT_S3_CONNECT_TIMEOUT = 5.0
DEFAULT_S3_READ_TIMEOUT = 30.0
DEFAULT_S3_ATTEMPTS = 3
MIN_SECRET_BITS = 128
CANNED_ACLS = frozenset({"private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read",
                         "bucket-owner-read", "bucket-owner-full-control", "log-delivery-write"})


class AuthError(AccessDeniedError):
    """No valid credential at all (HTTP 401), as opposed to a valid one that is refused (403)."""


@dataclass(frozen=True)
class ApiToken:
    """One API token's policy: what its holder may mint."""

    name: str
    sha256: str  # hex digest of the token
    bucket: str
    prefix: str = ""
    max_size: int | None = None
    max_expires: int = 7 * 86400
    #: uploads in progress allowed under bucket/prefix (counted from S3 at each mint), None = no limit
    max_uploads: int | None = None
    acls: tuple[str, ...] = ()  # canned ACLs the seed API may set for this token ("private" is always fine)
    no_overwrite: bool = False  # refuse to create an object that already exists
    max_files: int | None = None  # files in one bundle (/v1/mint with a prefix), None = 10,000
    max_total_size: int | None = None  # bytes of one bundle, None = no limit but max_size per file

    def matches(self, presented_sha256: bytes) -> bool:
        return hmac.compare_digest(bytes.fromhex(self.sha256), presented_sha256)

    def allows_key(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and key.startswith(self.prefix)


def token_sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def find_api_token(tokens: tuple[ApiToken, ...], presented: str | None) -> ApiToken:
    """The policy of the presented token; every entry is compared (constant time, no early exit)."""
    if not presented:
        raise AuthError("an API token is required (Authorization: Bearer <token>)",
                                "Ask the relay's admin for an API token.")
    digest = token_sha256(presented)
    found: ApiToken | None = None
    for t in tokens:
        if t.matches(digest) and found is None:
            found = t
    if found is None:
        raise AuthError("the API token is not valid for this relay", "Ask the relay's admin for an API token.")
    return found


def policy_named(tokens: tuple[ApiToken, ...], name: str) -> ApiToken | None:
    """The policy called ``name`` (what a manifest minted through /v1/mint carries), or None when removed."""
    return next((t for t in tokens if t.name == name), None)


class LimitError(TempFailError):
    """A policy's limit on uploads in progress is reached (HTTP 429): finish or abort one, then retry."""


def load_api_tokens(path: str | Path) -> tuple[ApiToken, ...]:
    """Read ``{"tokens": [{"name", "token" | "sha256", "bucket", "prefix", "max_size", "max_expires",
    "max_uploads"}]}``; names must be unique (manifests minted under a token carry its name)."""
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise NoInputError(f"API tokens file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read API tokens file {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
        raise ConfigError(f"API tokens file {path}: expected {{\"tokens\": [...]}}")
    out: list[ApiToken] = []
    for i, t in enumerate(data["tokens"]):
        where = f"API tokens file {path}, tokens[{i}]"
        if not isinstance(t, dict):
            raise ConfigError(f"{where}: not an object")
        unknown = set(t) - {"name", "token", "sha256", "bucket", "prefix", "max_size", "max_expires", "max_uploads",
                            "acls", "no_overwrite", "max_files", "max_total_size"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if bool(t.get("token")) == bool(t.get("sha256")):
            raise ConfigError(f"{where}: give exactly one of \"token\" and \"sha256\"")
        if not isinstance(t.get("bucket"), str) or not t["bucket"]:
            raise ConfigError(f"{where}: \"bucket\" is required")
        try:
            digest = t["sha256"].lower() if t.get("sha256") else token_sha256(str(t["token"])).hex()
            bytes.fromhex(digest)
            if len(digest) != 64:
                raise ValueError(digest)
            max_size = parse_size(t["max_size"]) if t.get("max_size") is not None else None
            max_expires = parse_duration(t["max_expires"]) if t.get("max_expires") is not None else 7 * 86400
            max_uploads = t.get("max_uploads")
            if max_uploads is not None and (isinstance(max_uploads, bool) or not isinstance(max_uploads, int)
                                            or max_uploads < 1):
                raise ValueError(f"max_uploads must be a positive whole number, not {max_uploads!r}")
        except (UsageError, ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        acls = t.get("acls") or []
        if not isinstance(acls, list) or not all(isinstance(a, str) and a in CANNED_ACLS for a in acls):
            raise ConfigError(f"{where}: \"acls\" must be a list of canned ACLs ({', '.join(sorted(CANNED_ACLS))})")
        if not isinstance(t.get("no_overwrite", False), bool):
            raise ConfigError(f"{where}: \"no_overwrite\" must be true or false")
        name = str(t.get("name") or f"token{i + 1}")
        if any(o.name == name for o in out):
            raise ConfigError(f"{where}: the name {name!r} is used twice; give every token its own name")
        out.append(ApiToken(name, digest, t["bucket"], str(t.get("prefix") or ""), max_size, max_expires,
                            max_uploads, tuple(acls), bool(t.get("no_overwrite", False)),
                            *_bundle_limits(t, where)))
    return tuple(out)


def _bundle_limits(t: dict[str, Any], where: str) -> tuple[int | None, int | None]:
    """``max_files`` (a positive whole number) and ``max_total_size`` (a size) of a token, for bundles."""
    files, total = t.get("max_files"), t.get("max_total_size")
    if files is not None and (isinstance(files, bool) or not isinstance(files, int) or files < 1):
        raise ConfigError(f"{where}: max_files must be a positive whole number, not {files!r}")
    try:
        return files, parse_size(total) if total is not None else None
    except (UsageError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: max_total_size: {exc}") from None


def secret_bits(secret: str) -> float:
    """A conservative estimate of a secret's strength: length x log2(alphabet of the character classes used).

    Eight distinct characters at least, so ``xxxx...`` does not pass for strong however long it is.
    ``openssl rand -hex 16`` (32 hex digits) and ``openssl rand -base64 32`` both reach 128 bits.
    """
    if len(set(secret)) < 8:
        return 0.0
    pool = sum(n for chars, n in ((str.islower, 26), (str.isupper, 26), (str.isdigit, 10))
               if any(chars(c) and c.isascii() for c in secret))
    pool += 32 if any(not (c.isascii() and c.isalnum()) for c in secret) else 0
    return len(secret) * math.log2(max(pool, 2))


def check_secrets(secrets: tuple[str, ...], insecure: bool = False, env_value: str | None = None) -> list[str]:
    """Refuse relay secrets weaker than 128 bits (unless ``insecure``); return warnings to show.

    A weak relay secret lets anyone forge manifest tokens offline, i.e. complete, abort or refresh
    any upload; the relay refuses to start with one rather than serve forgeable tokens.
    """
    if not secrets:
        raise ConfigError("the relay needs a secret to check manifest tokens",
                          "Set S3MPU_RELAY_SECRET, relay_secret_file in the [s3mpu] config section, or --secret-file.")
    warnings = []
    for i, s in enumerate(secrets, 1):
        bits = secret_bits(s)
        if bits < MIN_SECRET_BITS:
            what = f"relay secret {i} of {len(secrets)} is weak (about {bits:.0f} bits, {len(s)} characters)"
            if not insecure:
                raise ConfigError(f"{what}; anyone could forge manifest tokens",
                                  "Generate one with: openssl rand -base64 32 (or start with --insecure-secret "
                                  "for a test).")
            warnings.append(what)
    if env_value and "," in env_value:
        warnings.append(f"S3MPU_RELAY_SECRET holds a comma: it is read as {len(secrets)} secrets (rotation); "
                        "put a secret that contains a comma in a secret file instead")
    return warnings


@dataclass
class RelayConfig:
    """Everything the relay app needs, injected (tests pass their own clock and S3 client factory)."""

    settings: Settings = field(default_factory=Settings)
    secrets: tuple[str, ...] | None = None  # default: settings.relay_secrets (first = current)
    token_grace: int = DEFAULT_TOKEN_GRACE  # seconds a token stays usable after its URLs expire
    refresh_grace: int = DEFAULT_REFRESH_GRACE  # the same for /v1/refresh (the cure for expired URLs)
    max_refresh_expires: int = DEFAULT_MAX_REFRESH_EXPIRES
    max_body: int = DEFAULT_MAX_BODY
    api_tokens: tuple[ApiToken, ...] = ()
    seed_bucket: str | None = None
    public_url: str | None = None  # written into minted manifests; default: listen_url (never the Host header)
    listen_url: str | None = None  # set by the server once it listens
    seed_open: bool = False  # serve the seed API without API tokens (needs seed_prefix)
    seed_prefix: str = ""  # prepended to every seed form keyname
    seed_acls: tuple[str, ...] = ()  # canned ACLs the seed API may set (besides "private")
    seed_no_overwrite: bool = False  # seed uploads may not replace an existing object
    connection_limit: int = DEFAULT_CONNECTION_LIMIT
    channel_timeout: int = DEFAULT_CHANNEL_TIMEOUT
    request_timeout: int = DEFAULT_REQUEST_TIMEOUT
    s3_connect_timeout: float = DEFAULT_S3_CONNECT_TIMEOUT
    s3_read_timeout: float = DEFAULT_S3_READ_TIMEOUT
    s3_attempts: int = DEFAULT_S3_ATTEMPTS
    max_pool_connections: int = 16
    check_endpoint: bool = True  # refuse tokens minted for another S3 endpoint
    object_size_header: bool = True  # send x-amz-mp-object-size at complete
    s3_client_factory: Callable[[], Any] | None = None
    clock: Callable[[], float] = time.time
    service: ServiceOptions = field(default_factory=ServiceOptions)  # metrics, audit, webhooks, live tokens
    _client: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def all_secrets(self) -> tuple[str, ...]:
        return tuple(self.secrets if self.secrets is not None else self.settings.relay_secrets)

    def s3(self) -> Any:
        """One shared S3 client (botocore clients are thread-safe), built on first use."""
        with self._lock:
            if self._client is None:
                if self.s3_client_factory is not None:
                    self._client = self.s3_client_factory()
                else:
                    from s3mpu.config import s3_client

                    self._client = s3_client(self.settings, max_pool_connections=self.max_pool_connections,
                                             connect_timeout=self.s3_connect_timeout,
                                             read_timeout=self.s3_read_timeout, max_attempts=self.s3_attempts)
                for hook in self.service.client_hooks:  # e.g. s3mpu.relay.s3watch (metrics)
                    hook(self._client)
            return self._client

    def validate(self) -> None:
        """Refuse settings that would make the relay unsafe (exit 78 / ConfigError at start-up)."""
        if self.seed_bucket and not self.api_tokens and not (self.seed_open and self.seed_prefix):
            raise ConfigError(f"the seed API on {self.seed_bucket} would let anyone overwrite any object in it",
                              "Give API tokens (--tokens FILE), or --seed-api-open with --seed-prefix PREFIX to "
                              "confine anonymous uploads to PREFIX.")
        bad = [a for a in self.seed_acls if a not in CANNED_ACLS]
        if bad:
            raise ConfigError(f"--seed-acl {bad[0]!r} is not a canned ACL ({', '.join(sorted(CANNED_ACLS))})")
        if self.seed_prefix and any(seg in (".", "..") for seg in self.seed_prefix.split("/")[:-1]):
            raise ConfigError(f"--seed-prefix {self.seed_prefix!r} has a '.' or '..' segment")
        for name in ("connection_limit", "channel_timeout", "request_timeout", "s3_attempts", "max_body"):
            if getattr(self, name) < 1:
                raise ConfigError(f"the relay's {name.replace('_', ' ')} must be at least 1")
        if self.s3_connect_timeout <= 0 or self.s3_read_timeout <= 0:
            raise ConfigError("the relay's S3 timeouts must be positive")

    def limits(self) -> dict[str, Any]:
        """The effective limits, as printed by ``s3mpu relay --check-config`` and documented."""
        return {"max_body": self.max_body, "connection_limit": self.connection_limit,
                "channel_timeout": self.channel_timeout, "request_timeout": self.request_timeout,
                "token_grace": self.token_grace, "refresh_grace": self.refresh_grace,
                "max_refresh_expires": self.max_refresh_expires, "s3_connect_timeout": self.s3_connect_timeout,
                "s3_read_timeout": self.s3_read_timeout, "s3_attempts": self.s3_attempts}

    def endpoint(self) -> str:
        return str(self.s3().meta.endpoint_url)

    def region(self) -> str:
        return str(self.s3().meta.region_name)
