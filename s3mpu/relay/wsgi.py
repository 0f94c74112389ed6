"""The relay as a WSGI app object for gunicorn and friends: ``gunicorn s3mpu.relay.wsgi:app``.

A WSGI server imports this module, so configuration comes from the environment (the same
variables and config file as the admin side, plus relay-only ones):

- ``S3MPU_CONFIG`` (or s3cmd's ``S3CMD_CONFIG``, as the CLI reads): s3cmd-format config file
  (default ``~/.s3cfg`` when present);
  ``AWS_*`` variables as usual; ``S3MPU_RELAY_SECRET`` / ``S3MPU_RELAY_SECRET_FILE``;
- ``S3MPU_RELAY_TOKENS`` (API tokens file), ``S3MPU_RELAY_SEED_BUCKET``, ``S3MPU_RELAY_PUBLIC_URL``,
  ``S3MPU_RELAY_MAX_BODY`` (size), ``S3MPU_RELAY_TOKEN_GRACE``, ``S3MPU_RELAY_REFRESH_GRACE``,
  ``S3MPU_RELAY_MAX_REFRESH_EXPIRES`` (durations).

A relay that cannot work (no secret, no credentials) fails at import, so the server refuses to
boot with the reason instead of answering 500 to every request.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from s3mpu.config import load_settings, require_credentials, s3_client
from s3mpu.errors import ConfigError
from s3mpu.units import parse_duration, parse_size
from s3mpu.relay.config import RelayConfig, load_api_tokens


def config_from_env(env: Mapping[str, str] | None = None) -> RelayConfig:
    """A RelayConfig from environment variables (see the module docstring)."""
    env = os.environ if env is None else env
    settings = load_settings(None, env=env)  # S3MPU_CONFIG or S3CMD_CONFIG, as in the CLI
    if not settings.relay_secrets:
        raise ConfigError("the relay needs a secret: set S3MPU_RELAY_SECRET or S3MPU_RELAY_SECRET_FILE")
    kwargs: dict[str, Any] = {}
    for var, name, parse in (("S3MPU_RELAY_MAX_BODY", "max_body", parse_size),
                             ("S3MPU_RELAY_TOKEN_GRACE", "token_grace", parse_duration),
                             ("S3MPU_RELAY_REFRESH_GRACE", "refresh_grace", parse_duration),
                             ("S3MPU_RELAY_MAX_REFRESH_EXPIRES", "max_refresh_expires", parse_duration)):
        if env.get(var):
            kwargs[name] = parse(env[var])
    if env.get("S3MPU_RELAY_TOKENS"):
        kwargs["api_tokens"] = load_api_tokens(env["S3MPU_RELAY_TOKENS"])
    client = s3_client(settings, max_pool_connections=32)  # gunicorn gthread workers share it
    require_credentials(client)
    return RelayConfig(settings=settings, seed_bucket=env.get("S3MPU_RELAY_SEED_BUCKET") or None,
                       public_url=(env.get("S3MPU_RELAY_PUBLIC_URL") or "").rstrip("/") or None,
                       s3_client_factory=lambda: client, **kwargs)


def make_app(env: Mapping[str, str] | None = None) -> Any:
    """The Flask app configured from ``env``, with s3mpu's log lines on stderr when nothing else logs them."""
    from s3mpu.relay.app import create_app

    lg = logging.getLogger("s3mpu")
    if not lg.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    return create_app(config_from_env(env))


def __getattr__(name: str) -> Any:
    """``app`` is built on first access (so importing this module for its helpers costs nothing)."""
    if name == "app":
        value = make_app()
        globals()["app"] = value
        return value
    raise AttributeError(name)
