"""``s3mpu relay --check-config``: what an admin runs before starting (or after changing) a relay.

By the time this runs, the relay's own start-up checks have passed (secret strength, tokens
file, seed API safety, credentials found); this adds what start-up does not do, because a
relay must boot even while S3 is briefly down: it asks S3 whether the endpoint answers and
the configured buckets are reachable with these credentials, then prints the effective limits.
"""
from __future__ import annotations


import click

from s3mpu.cli import AppContext
from s3mpu.errors import ConfigError
from s3mpu.relay.config import RelayConfig, secret_bits
from s3mpu.s3errors import classify_boto
from s3mpu.units import format_duration, format_size


def check_config(app: AppContext, config: RelayConfig, threads: int) -> None:
    """Print one line per check and the limits; raise ConfigError (exit 78) on the first problem."""
    secrets = config.all_secrets
    click.echo(f"ok   relay secret: {len(secrets)} secret(s), weakest about "
               f"{min(secret_bits(s) for s in secrets):.0f} bits")
    click.echo(f"ok   API tokens: {len(config.api_tokens)}" +
               "".join(f"\n       {t.name}: s3://{t.bucket}/{t.prefix}*" for t in config.api_tokens))
    if config.seed_bucket:
        mode = "API tokens" if config.api_tokens else f"open, under prefix {config.seed_prefix!r}"
        click.echo(f"ok   seed API on {config.seed_bucket}: {mode}")
    client = config.s3()
    click.echo(f"ok   credentials found; S3 endpoint {client.meta.endpoint_url}")
    buckets = sorted({b for b in [config.seed_bucket, *(t.bucket for t in config.api_tokens)] if b})
    try:
        if buckets:
            for bucket in buckets:
                client.head_bucket(Bucket=bucket)
                click.echo(f"ok   bucket {bucket} reachable")
        else:
            client.list_buckets()
            click.echo("ok   S3 answers (ListBuckets)")
    except Exception as exc:  # noqa: BLE001 - every botocore failure becomes one clear line
        err = classify_boto(exc, f"asking S3 at {client.meta.endpoint_url}")
        raise ConfigError(f"S3 check failed: {err.message}",
                          "Check the endpoint, the credentials and the bucket names, then run --check-config again.") \
            from None
    _webhooks(config)
    click.echo("limits:")
    for name, value in config.limits().items():
        shown = format_size(value) if name == "max_body" else (
            format_duration(int(value)) if name in ("token_grace", "refresh_grace", "max_refresh_expires")
            else f"{value:g} s" if name.endswith("timeout") else str(value))
        click.echo(f"     {name.replace('_', '-')}: {shown}")
    click.echo(f"     threads: {threads}")
    click.echo("configuration OK")


def _webhooks(config: RelayConfig) -> None:
    """The webhook settings, the secret shown only by its length (it was parsed at start-up already)."""
    opts = config.service
    if not opts.webhooks:
        click.echo("ok   webhooks: none")
        return
    from s3mpu.relay.webhooks import shown_url

    click.echo(f"ok   webhooks: {len(opts.webhooks)}, signed (Standard Webhooks) with a "
               f"{len(opts.webhook_secret or b'') * 8}-bit whsec_ secret")
    for url in opts.webhooks:
        click.echo(f"       {shown_url(url)}")
    click.echo(f"       timeout {opts.webhook_timeout:g} s, retried for {format_duration(int(opts.webhook_max_age))}, "
               f"queue of at most {opts.webhook_queue} deliveries")


__all__ = ["check_config"]
