"""The relay as a WSGI app object for gunicorn and friends: ``gunicorn s3mpu.relay.wsgi:app``.

A WSGI server imports this module, so configuration comes from the environment (the same
variables and config file as the admin side, plus relay-only ones):

- ``S3MPU_CONFIG`` (or s3cmd's ``S3CMD_CONFIG``, as the CLI reads): s3cmd-format config file
  (default ``~/.s3cfg`` when present);
  ``AWS_*`` variables as usual; ``S3MPU_RELAY_SECRET`` / ``S3MPU_RELAY_SECRET_FILE``;
- ``S3MPU_RELAY_PUBLIC_URL`` (required: under a WSGI server the relay cannot know where it
  listens, and it never takes its own URL from a request's Host header);
- ``S3MPU_RELAY_TOKENS`` (API tokens file), ``S3MPU_RELAY_MAX_BODY`` (size),
  ``S3MPU_RELAY_TOKEN_GRACE``, ``S3MPU_RELAY_REFRESH_GRACE``, ``S3MPU_RELAY_MAX_REFRESH_EXPIRES``
  (durations), ``S3MPU_RELAY_INSECURE_SECRET=1`` (accept a secret below 128 bits: tests only);
- seed API: ``S3MPU_RELAY_SEED_BUCKET``, ``S3MPU_RELAY_SEED_OPEN=1`` with ``S3MPU_RELAY_SEED_PREFIX``
  (serve it without API tokens), ``S3MPU_RELAY_SEED_ACLS`` (comma-separated canned ACLs),
  ``S3MPU_RELAY_SEED_NO_OVERWRITE=1``;
- the relay's S3 client: ``S3MPU_RELAY_S3_CONNECT_TIMEOUT``, ``S3MPU_RELAY_S3_READ_TIMEOUT``
  (seconds), ``S3MPU_RELAY_S3_ATTEMPTS``;
- webhooks: ``S3MPU_RELAY_WEBHOOKS`` (space-separated URLs), ``S3MPU_WEBHOOK_SECRET`` or
  ``S3MPU_RELAY_WEBHOOK_SECRET_FILE``; metrics of all workers together: ``PROMETHEUS_MULTIPROC_DIR``
  (an empty directory, see :mod:`s3mpu.relay.metrics`). The tokens file is re-read when it changes.

Connection limits are the WSGI server's job here (gunicorn ``--timeout``, ``--worker-connections``;
see docs/relay.md). A relay that cannot work or would be unsafe (no secret, a weak one, no
credentials, an open seed API without a prefix) fails at import with a ConfigError, so the
server refuses to boot with the reason instead of answering 500 to every request.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from s3mpu.config import load_settings, require_credentials
from s3mpu.errors import ConfigError, S3mpuError
from s3mpu.units import parse_duration, parse_size
from s3mpu.relay.config import RelayConfig, check_secrets, load_api_tokens

log = logging.getLogger("s3mpu.relay")


def _flag(env: Mapping[str, str], var: str) -> bool:
    return env.get(var, "").strip().lower() in ("1", "true", "yes", "on")


def _number(parse: Any) -> Any:
    def run(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            raise ConfigError(f"{text!r} is not a number") from None
    return run


def config_from_env(env: Mapping[str, str] | None = None) -> RelayConfig:
    """A RelayConfig from environment variables (see the module docstring)."""
    env = os.environ if env is None else env
    settings = load_settings(None, env=env)  # S3MPU_CONFIG or S3CMD_CONFIG, as in the CLI
    if not settings.relay_secrets:
        raise ConfigError("the relay needs a secret: set S3MPU_RELAY_SECRET or S3MPU_RELAY_SECRET_FILE")
    for warning in check_secrets(settings.relay_secrets, _flag(env, "S3MPU_RELAY_INSECURE_SECRET"),
                                 env.get("S3MPU_RELAY_SECRET")):
        log.warning("%s", warning)
    public_url = (env.get("S3MPU_RELAY_PUBLIC_URL") or "").rstrip("/") or None
    if not public_url:
        raise ConfigError("the relay needs S3MPU_RELAY_PUBLIC_URL under a WSGI server",
                          "Set it to the URL users reach the relay at (written into minted and refreshed manifests).")
    kwargs: dict[str, Any] = {}
    for var, name, parse in (("S3MPU_RELAY_MAX_BODY", "max_body", parse_size),
                             ("S3MPU_RELAY_TOKEN_GRACE", "token_grace", parse_duration),
                             ("S3MPU_RELAY_REFRESH_GRACE", "refresh_grace", parse_duration),
                             ("S3MPU_RELAY_MAX_REFRESH_EXPIRES", "max_refresh_expires", parse_duration),
                             ("S3MPU_RELAY_S3_CONNECT_TIMEOUT", "s3_connect_timeout", _number(float)),
                             ("S3MPU_RELAY_S3_READ_TIMEOUT", "s3_read_timeout", _number(float)),
                             ("S3MPU_RELAY_S3_ATTEMPTS", "s3_attempts", _number(int))):
        if env.get(var):
            try:
                kwargs[name] = parse(env[var])
            except S3mpuError as exc:
                raise ConfigError(f"{var}: {exc.message}") from None
    if env.get("S3MPU_RELAY_TOKENS"):
        kwargs["api_tokens"] = load_api_tokens(env["S3MPU_RELAY_TOKENS"])
    from s3mpu.relay.options import ServiceOptions
    from s3mpu.relay.webhooks import check_url, load_secret

    hooks = tuple(check_url(u) for u in env.get("S3MPU_RELAY_WEBHOOKS", "").split())
    service = ServiceOptions(tokens_file=env.get("S3MPU_RELAY_TOKENS") or None, webhooks=hooks,
                             webhook_secret=load_secret(env.get("S3MPU_RELAY_WEBHOOK_SECRET_FILE"),
                                                        env.get("S3MPU_WEBHOOK_SECRET")) if hooks else None)
    config = RelayConfig(settings=settings, service=service, seed_bucket=env.get("S3MPU_RELAY_SEED_BUCKET") or None,
                         seed_open=_flag(env, "S3MPU_RELAY_SEED_OPEN"),
                         seed_prefix=env.get("S3MPU_RELAY_SEED_PREFIX", ""),
                         seed_acls=tuple(a.strip() for a in env.get("S3MPU_RELAY_SEED_ACLS", "").split(",")
                                         if a.strip()),
                         seed_no_overwrite=_flag(env, "S3MPU_RELAY_SEED_NO_OVERWRITE"),
                         public_url=public_url, max_pool_connections=32,  # gunicorn gthread workers share it
                         **kwargs)
    config.validate()
    require_credentials(config.s3())
    return config


def make_app(env: Mapping[str, str] | None = None) -> Any:
    """The Flask app configured from ``env``, with s3mpu's log lines on stderr when nothing else logs them."""
    from s3mpu.relay.app import create_app

    lg = logging.getLogger("s3mpu")
    if not lg.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    import atexit

    app = create_app(config_from_env(env))
    atexit.register(app.extensions["s3mpu.relay.ops"].close)  # log webhooks still queued as undelivered
    return app


def __getattr__(name: str) -> Any:
    """``app`` is built on first access (so importing this module for its helpers costs nothing)."""
    if name == "app":
        value = make_app()
        globals()["app"] = value
        return value
    raise AttributeError(name)
