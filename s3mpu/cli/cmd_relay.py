"""``s3mpu relay`` (run the relay service) and ``s3mpu request`` (online mint, then put)."""
from __future__ import annotations

import logging
import sys
from typing import Any

import click

from s3mpu.cli import AppContext, json_option
from s3mpu.cli.params import DURATION, EXPIRES, S3OBJECT, SIZE
from s3mpu.relay.config import (DEFAULT_CHANNEL_TIMEOUT, DEFAULT_CONNECTION_LIMIT, DEFAULT_REQUEST_TIMEOUT,
                                DEFAULT_S3_ATTEMPTS, DEFAULT_S3_CONNECT_TIMEOUT, DEFAULT_S3_READ_TIMEOUT)


def _listen(value: str, option: str = "--listen") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8080)", param_hint=option)
    return (host.strip("[]") or "127.0.0.1"), int(port)


class _Stderr(logging.Handler):
    """Log lines on stderr, looked up at emit time (so a replaced sys.stderr is honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def _setup_logging(quiet: bool) -> None:
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("s3mpu", "waitress"):
        lg = logging.getLogger(name)
        lg.handlers = [h for h in lg.handlers if not isinstance(h, _Stderr)] + [handler]
        lg.setLevel(logging.WARNING if quiet else logging.INFO)
        lg.propagate = False


@click.command()
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Address to listen on (0.0.0.0:8080 for all interfaces; put TLS in front, see docs/relay.md).")
@click.option("--secret-file", metavar="FILE",
              help="Relay secrets, one per line: the first signs, all verify (rotation). Also S3MPU_RELAY_SECRET.")
@click.option("--insecure-secret", is_flag=True, help="Accept a relay secret below 128 bits (tests only).")
@click.option("--tokens", "tokens_file", metavar="FILE", help="API tokens for POST /v1/mint (JSON, see docs/relay.md).")
@click.option("--seed-api", "seed_bucket", metavar="BUCKET",
              help="Also serve the seed article's API on BUCKET: the form-encoded POST /presign and "
                   "POST /complete of the small server s3mpu grew out of. Clients written for it then work unchanged "
                   "(needs --tokens, or --seed-api-open with --seed-prefix).")
@click.option("--seed-api-open", is_flag=True,
              help="Serve the seed API without API tokens (needs --seed-prefix: anyone may upload under it).")
@click.option("--seed-prefix", default="", metavar="PREFIX", help="Prepended to every seed form keyname.")
@click.option("--seed-acl", "seed_acls", multiple=True, metavar="ACL",
              help="A canned ACL the seed API may set (repeatable; default: none but private).")
@click.option("--seed-no-overwrite", is_flag=True, help="Seed uploads may not replace an existing object.")
@click.option("--public-url", metavar="URL",
              help="The relay's URL as users reach it (written into minted and refreshed manifests; "
                   "default: the listening address).")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True, help="Worker threads.")
@click.option("--max-body", type=SIZE, default="2M", show_default=True,
              help="Largest request body accepted (413 before it is read beyond).")
@click.option("--connection-limit", type=click.IntRange(1, 10000), default=DEFAULT_CONNECTION_LIMIT,
              show_default=True, help="Open connections at most (new ones wait in the backlog).")
@click.option("--channel-timeout", type=DURATION, default=f"{DEFAULT_CHANNEL_TIMEOUT}s", show_default=True,
              help="Close a connection idle this long.")
@click.option("--request-timeout", type=DURATION, default=f"{DEFAULT_REQUEST_TIMEOUT}s", show_default=True,
              help="Cut off a client that takes longer than this to send one whole request (slow clients).")
@click.option("--s3-connect-timeout", type=click.FloatRange(0.1, 600), default=DEFAULT_S3_CONNECT_TIMEOUT,
              show_default=True, help="Seconds to connect to S3.")
@click.option("--s3-read-timeout", type=click.FloatRange(0.1, 3600), default=DEFAULT_S3_READ_TIMEOUT,
              show_default=True, help="Seconds S3 may stay silent during one call.")
@click.option("--s3-attempts", type=click.IntRange(1, 20), default=DEFAULT_S3_ATTEMPTS, show_default=True,
              help="Attempts per S3 call (a stalled S3 costs about attempts x read timeout).")
@click.option("--token-grace", type=DURATION, default="1d", show_default=True,
              help="How long after its URLs expire a manifest token may still complete, status or abort.")
@click.option("--refresh-grace", type=DURATION, default="7d", show_default=True,
              help="How long after expiry a manifest token may still ask /v1/refresh for new URLs.")
@click.option("--max-refresh-expires", type=DURATION, default="7d", show_default=True,
              help="Longest expiry /v1/refresh grants.")
@click.option("--trusted-proxy", metavar="IP", help="Reverse proxy whose X-Forwarded-* headers are believed (e.g. 127.0.0.1).")
@click.option("--no-object-size-header", is_flag=True, help="Do not send x-amz-mp-object-size at complete.")
@click.option("--metrics-listen", metavar="HOST:PORT",
              help="Serve GET /metrics on this address instead of on --listen (e.g. 127.0.0.1:9100).")
@click.option("--webhook", "webhooks", multiple=True, metavar="URL",
              help="POST signed upload.minted/completed/aborted events to URL (repeatable; Standard Webhooks).")
@click.option("--webhook-secret-file", metavar="FILE",
              help="The webhooks' whsec_ signing secret (also S3MPU_WEBHOOK_SECRET).")
@click.option("--webhook-timeout", type=click.FloatRange(0.1, 300), default=10.0, show_default=True,
              help="Seconds a webhook receiver may take; a failed delivery is retried with backoff for an hour.")
@click.option("--stop-delay", type=DURATION, default="0s", show_default=True,
              help="After SIGTERM, keep serving this long with /readyz answering 503 (your load balancer's probe "
                   "interval x failure threshold), then finish requests in flight and stop.")
@click.option("--check-config", is_flag=True,
              help="Check secret, tokens file, credentials and the S3 endpoint, print the limits, and exit "
                   "(0 when fine, 78 on a problem).")
@click.pass_obj
def relay(app: AppContext, listen: str, secret_file: str | None, insecure_secret: bool, tokens_file: str | None,
          seed_bucket: str | None, seed_api_open: bool, seed_prefix: str, seed_acls: tuple[str, ...],
          seed_no_overwrite: bool, public_url: str | None, threads: int, max_body: int, connection_limit: int,
          channel_timeout: int, request_timeout: int, s3_connect_timeout: float, s3_read_timeout: float,
          s3_attempts: int, token_grace: int, refresh_grace: int, max_refresh_expires: int,
          trusted_proxy: str | None, no_object_size_header: bool, metrics_listen: str | None,
          webhooks: tuple[str, ...], webhook_secret_file: str | None, webhook_timeout: float,
          stop_delay: int, check_config: bool) -> None:
    """Run the relay: completes uploads for holders of a manifest, without seeing their bytes.

    It holds the S3 credentials (same config as the admin side) and the relay secret. It is
    stateless: run as many as you like behind a load balancer. One JSON access-log line per
    request goes to stderr; SIGTERM/SIGINT stop it gracefully. Production setup (systemd,
    gunicorn, nginx with TLS, secret rotation, threat model): docs/relay.md.

    The seed article's API (--seed-api): s3mpu grew out of an article whose small server
    presigned multipart uploads with two form-encoded calls, POST /presign and POST /complete.
    With --seed-api BUCKET the relay answers those calls too, so clients written for the
    article keep working unchanged, now with every part checked before completion.

    \b
    Examples:
      S3MPU_RELAY_SECRET=... s3mpu relay --listen 127.0.0.1:8080
      s3mpu -c /etc/s3mpu/s3cfg relay --secret-file /etc/s3mpu/secret --tokens /etc/s3mpu/tokens.json
      s3mpu -c /etc/s3mpu/s3cfg relay --secret-file /etc/s3mpu/secret --check-config
      s3mpu relay --listen 0.0.0.0:8080 --seed-api uploads --tokens t.json --trusted-proxy 127.0.0.1
      S3MPU_WEBHOOK_SECRET=whsec_... s3mpu relay --webhook https://hooks.example/s3mpu --metrics-listen :9100

    Service endpoints: GET /healthz (liveness), GET /readyz (S3 reachable), GET /metrics
    (Prometheus). The tokens file is re-read when it changes, and on SIGHUP.
    """
    import os
    from dataclasses import replace

    from s3mpu.config import read_secret_file, require_credentials
    from s3mpu.errors import ConfigError, NoInputError
    from s3mpu.relay.config import RelayConfig, check_secrets, load_api_tokens
    from s3mpu.relay.options import ServiceOptions
    from s3mpu.relay.server import serve
    from s3mpu.relay.webhooks import check_url, load_secret

    host, port = _listen(listen)
    metrics_addr = _listen(metrics_listen, "--metrics-listen") if metrics_listen else None
    service = ServiceOptions(metrics_route=metrics_addr is None, webhooks=tuple(check_url(u) for u in webhooks),
                             webhook_secret=load_secret(webhook_secret_file, os.environ.get("S3MPU_WEBHOOK_SECRET"))
                             if webhooks else None, webhook_timeout=webhook_timeout, tokens_file=tokens_file)
    settings = app.settings
    if secret_file:
        secrets = read_secret_file(secret_file)
        if not secrets:
            raise ConfigError(f"relay secret file {secret_file} holds no secret", "Put one secret per line in it.")
        settings = replace(settings, relay_secrets=tuple(dict.fromkeys([*secrets, *settings.relay_secrets])))
    warnings = check_secrets(settings.relay_secrets, insecure_secret, os.environ.get("S3MPU_RELAY_SECRET"))
    try:
        api_tokens = load_api_tokens(tokens_file) if tokens_file else ()
    except NoInputError as exc:  # a missing tokens file is a configuration problem (78), like a bad one
        raise ConfigError(exc.message, "Fix --tokens FILE (see docs/relay.md for its format).") from None
    config = RelayConfig(settings=settings, token_grace=token_grace, refresh_grace=refresh_grace,
                         max_refresh_expires=max_refresh_expires, max_body=max_body, api_tokens=api_tokens,
                         seed_bucket=seed_bucket, seed_open=seed_api_open, seed_prefix=seed_prefix,
                         seed_acls=seed_acls, seed_no_overwrite=seed_no_overwrite,
                         public_url=public_url.rstrip("/") if public_url else None,
                         object_size_header=not no_object_size_header, connection_limit=connection_limit,
                         channel_timeout=channel_timeout, request_timeout=request_timeout,
                         s3_connect_timeout=s3_connect_timeout, s3_read_timeout=s3_read_timeout,
                         s3_attempts=s3_attempts, max_pool_connections=max(10, threads), service=service)
    config.validate()
    for w in warnings:
        app.out.warn(w)
    client = config.s3()
    require_credentials(client)
    if check_config:
        from s3mpu.cli.relay_check import check_config as run_check

        run_check(app, config, threads)
        return
    _setup_logging(app.out.quiet)
    if seed_bucket and not api_tokens:
        app.out.warn(f"the seed API is open: anyone who reaches this relay can upload under "
                     f"s3://{seed_bucket}/{seed_prefix} (add --tokens FILE to require API tokens)")
    if not public_url and host in ("0.0.0.0", "::", ""):
        app.out.warn(f"no --public-url: manifests this relay mints or refreshes will name http://{listen}")
    waitress_options: dict[str, Any] = {}
    if trusted_proxy:
        waitress_options.update(trusted_proxy=trusted_proxy, trusted_proxy_count=1,
                                trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
    features = [f"{len(api_tokens)} API token(s)" if api_tokens else "", f"seed API on {seed_bucket}" if seed_bucket else ""]
    extra = ", ".join(f for f in features if f)

    def ready(url: str) -> None:
        app.out.info(f"relay listening on {url} for S3 at {client.meta.endpoint_url}"
                     f"{' (' + extra + ')' if extra else ''}; Ctrl-C or SIGTERM to stop")

    try:
        serve(config, host=host, port=port, threads=threads, ready=ready, waitress_options=waitress_options,
              metrics_listen=metrics_addr, stop_delay=stop_delay)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {listen}: {exc.strerror or exc}",
                          "Pick another --listen address or stop what is using it.") from None


def folder_options(fn: Any) -> Any:
    """``request``'s options for a folder, as ``plan DIR`` spells them (used by cmd_request_bundle)."""
    from s3mpu.cli.cmd_plan_dir import FilterOption

    for option in reversed([
            click.option("--exclude", multiple=True, metavar="GLOB", cls=FilterOption,
                         help="DIR: leave out paths matching GLOB (repeatable; with --include, the last match wins)."),
            click.option("--include", multiple=True, metavar="GLOB", cls=FilterOption,
                         help="DIR: keep paths matching GLOB that an earlier --exclude left out (repeatable)."),
            click.option("--follow-symlinks", is_flag=True, help="DIR: follow symlinks inside DIR (default: skip)."),
            click.option("--sizes-only", is_flag=True, help="DIR: sizes without hashing (no Content-MD5 bound).")]):
        fn = option(fn)
    return fn


@click.command()
@click.argument("target", type=S3OBJECT)
@click.argument("file", metavar="FILE|DIR", type=click.Path())
@click.option("--relay", "relay_url", metavar="URL", help="The relay to ask (default: S3MPU_RELAY_URL or the config).")
@click.option("--token", envvar="S3MPU_API_TOKEN", metavar="TOKEN",
              help="API token from the relay's admin (better: the S3MPU_API_TOKEN variable, not visible in ps).")
@click.option("--part-size", type=SIZE, help="Part size (default: the relay's automatic choice).")
@click.option("--expires", type=EXPIRES, help="How long the URLs stay valid (capped by the token's policy).")
@click.option("--mime-type", "content_type", metavar="TYPE", help="Content-Type (default: guessed from the file name).")
@click.option("--meta", multiple=True, metavar="K=V", help="x-amz-meta-K metadata (repeatable).")
@click.option("--save-manifest", metavar="FILE", help="Where to keep the manifest (mode 0600) for resuming with s3mpu put.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), help="Parts sent in parallel (default 8).")
@click.option("--retries", type=click.IntRange(0, 100), default=5, show_default=True, help="Attempts per part after the first.")
@click.option("--limit-rate", type=SIZE, metavar="RATE", help="Total upload rate in bytes/s, e.g. 20M.")
@click.option("--progress", "progress_mode", type=click.Choice(["auto", "rich", "plain", "tqdm", "none"]),
              default="auto", show_default=True, help="Progress display.")
@click.option("--max-size", type=SIZE, help="With FILE '-': the most the stream may hold (the manifest's maximum).")
@click.option("--size", "exact_size", type=SIZE, help="With FILE '-': the stream's exact size, when known.")
@click.option("--memory", type=SIZE, metavar="SIZE", help="With FILE '-': memory for buffered parts (default 256M).")
@folder_options
@json_option
@click.pass_obj
def request(app: AppContext, target: Any, file: str, relay_url: str | None, token: str | None, part_size: int | None,
            expires: Any, content_type: str | None, meta: tuple[str, ...], save_manifest: str | None,
            jobs: int | None, retries: int, limit_rate: int | None, progress_mode: str, max_size: int | None,
            exact_size: int | None, memory: int | None, **_folder: Any) -> None:
    """Ask a relay for a manifest (online mint), then upload FILE and complete, like put.

    This is the online flow of the seed article (the article s3mpu grew out of, whose small
    server presigned an upload on request with POST /presign): here the relay mints, within
    the limits of your API token, so you need no S3 credentials and no manifest handed over.
    The manifest is kept (mode 0600, in the state directory unless --save-manifest) so an
    interrupted upload resumes with the s3mpu put command printed on failure.

    \b
    Examples:
      S3MPU_API_TOKEN=... s3mpu request s3://media/in/raw.mov raw.mov --relay https://relay.example
      s3mpu request s3://media/in/raw.mov raw.mov --relay https://relay.example --token T --expires 12h
      pg_dump db | s3mpu request s3://backups/db.dump - --max-size 50G --relay https://relay.example
      s3mpu request s3://media/in/card/ ./card --relay https://relay.example   # a folder: a bundle
    """
    from s3mpu.cli.cmd_request_bundle import request_bundle, wants_bundle
    if wants_bundle(target, file):  # s3://B/PREFIX/ DIR: a bundle (SPEC §8)
        return request_bundle(app, click.get_current_context().params)
    if _folder.get("exclude") or _folder.get("include") or _folder.get("follow_symlinks") or _folder.get("sizes_only"):
        from s3mpu.errors import UsageError

        raise UsageError("--exclude, --include, --follow-symlinks and --sizes-only are for a folder (s3://B/PREFIX/ DIR)")
    import mimetypes
    import os
    from datetime import timezone

    from s3mpu import manifest as manifests
    from pathlib import Path

    from s3mpu.errors import AccessDeniedError, NoInputError, S3mpuError, UsageError

    from s3mpu.user.kept import kept_path, load_kept
    from s3mpu.user.relayclient import RelayClient
    from s3mpu.user.upload import upload
    from s3mpu.cli.cmd_mint import _kv
    from s3mpu.cli.cmd_user import stdin_or
    from s3mpu.cli.progress_rich import make_progress

    url = relay_url or app.settings.relay_url
    if not url:
        raise UsageError("request needs the relay's URL", "Pass --relay URL or set S3MPU_RELAY_URL.")
    if not token:
        raise AccessDeniedError("request needs an API token from the relay's admin",
                                "Pass --token or set S3MPU_API_TOKEN.")
    body: dict[str, Any] = {"bucket": target.bucket, "key": target.key}
    if file == "-":  # a stream: its size is known only at its end, so the manifest is for at most --max-size
        if exact_size is None and max_size is None:
            raise UsageError("request - needs --max-size (the most the stream may hold) or --size",
                             f"e.g. s3mpu request {target} - --max-size 50G")
        body.update({"size": exact_size} if exact_size is not None else {"max_size": max_size})
    else:
        if exact_size is not None or max_size is not None or memory is not None:
            raise UsageError("--size, --max-size and --memory are for FILE '-' (standard input)")
        try:
            body["size"] = os.stat(file).st_size
        except OSError as exc:
            raise NoInputError(f"cannot read {file}: {exc.strerror or exc}") from None
    if part_size:
        body["part_size"] = part_size
    if expires is not None:
        body["expires"] = expires.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ctype = content_type or (mimetypes.guess_type(file)[0] if file != "-" else None)
    if ctype:
        body["content_type"] = ctype
    if meta:
        body["metadata"] = _kv(meta, "--meta")
    from s3mpu.units import plural

    saved = save_manifest or str(kept_path(url, target.bucket, target.key, file))
    # a stream is minted afresh each time: re-checking a kept upload would use the stream up
    kept = load_kept(saved, target.bucket, target.key) if file != "-" else None
    size = int(body["size"]) if file != "-" else 0
    if kept is not None and not (kept.size == size or (kept.size_is_max and size <= kept.size)):
        app.out.warn(f"{file} no longer fits the upload kept in {saved} ({kept.size} bytes); aborting it and "
                     "minting a new one")
        _abort_quietly(kept)
        kept = None
    sink = make_progress(app.out, progress_mode, label=target.key.rsplit("/", 1)[-1] or target.key)
    while True:
        if kept is not None:  # the same command ran before: resume its upload instead of starting another
            m = kept
            app.out.info(f"resuming the upload of {m.uri} kept in {saved} (expires {m.expires_at})")
        else:
            m = manifests.Manifest.from_dict(RelayClient(url).mint(token, body))
            Path(saved).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            manifests.dump(m, saved)
            app.out.info(f"minted {m.uri}: {plural(len(m.parts), 'part')}, expires {m.expires_at}; manifest kept in {saved}")
        try:
            result = upload(m, stdin_or(file), jobs=jobs, retries=retries, limit_rate=limit_rate, progress=sink,
                            manifest_path=saved, warn=app.out.warn, info=app.out.info, memory=memory,
                            debug=app.out.debug)
            break
        except NoInputError as exc:
            if kept is None or "no longer exists" not in exc.message:
                raise
            app.out.warn(f"the upload kept in {saved} no longer exists (aborted or expired); minting a new one")
            kept = None
        except S3mpuError as exc:
            if not exc.hint:
                exc.hint = f"Resume with: s3mpu put {saved} {file}"
            raise
    from s3mpu.cli.cmd_user import summary

    human = summary(m.uri, result) if result.completed else f"{m.uri}: {result.message}"
    app.out.result({**result.to_dict(), "manifest": saved, "upload_id": m.upload_id}, human)


def _abort_quietly(m: Any) -> None:
    """Best effort: free the parts of a kept upload that will not be resumed (its file changed size)."""
    from s3mpu.errors import S3mpuError
    from s3mpu.user.relayclient import RelayClient

    if m.relay and m.relay.url and m.relay.token:
        try:
            RelayClient(m.relay.url, retries=0).abort(m.relay.token)
        except S3mpuError:
            pass
