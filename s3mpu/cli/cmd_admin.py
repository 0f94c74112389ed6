"""Admin housekeeping (s3cmd's names): ``listmp``, ``abortmp``, ``cleanup``, and ``configure``."""
from __future__ import annotations

from typing import Any

import click

from s3mpu.cli import AppContext, json_option
from s3mpu.cli.params import DURATION, S3OBJECT, S3URI


def _client(app: AppContext) -> Any:
    from s3mpu.config import require_credentials

    client = app.s3_client()
    require_credentials(client)
    return client


def _age(seconds: int | None) -> str:
    from s3mpu.units import format_duration

    return "?" if seconds is None else format_duration(seconds)


@click.command()
@click.argument("target", type=S3URI, metavar="s3://BUCKET[/PREFIX]")
@click.argument("upload_id", required=False)
@json_option
@click.pass_obj
def listmp(app: AppContext, target: Any, upload_id: str | None) -> None:
    """List in-progress multipart uploads: id, key, age, parts and bytes so far.

    With an UPLOAD_ID (s3cmd's form: listmp s3://BUCKET/KEY ID), list that upload's parts.
    Incomplete uploads cost storage and do not show in a bucket listing. Abort one
    with 'abortmp', or all stale ones with 'cleanup'.

    \b
    Examples:
      s3mpu listmp s3://media
      s3mpu listmp s3://media/videos/ --json | jq -r '.uploads[].upload_id'
      s3mpu listmp s3://media/videos/raw.mov 2~AbCdEf...      # the parts of one upload
    """
    from s3mpu.units import format_size, plural

    if upload_id:
        from s3mpu.admin.housekeeping import list_parts

        if not target.key:
            raise click.UsageError("listmp with an UPLOAD_ID needs s3://BUCKET/KEY")
        parts = list_parts(_client(app), target.bucket, target.key, upload_id)
        data = {"bucket": target.bucket, "key": target.key, "upload_id": upload_id, "parts": parts,
                "size": sum(p["size"] for p in parts)}
        rows = [f"{'part':>5}  {'last modified':20}  {'size':>10}  etag"]
        rows += [f"{p['number']:>5}  {p['last_modified'] or '?':20}  {format_size(p['size']):>10}  {p['etag']}"
                 for p in parts]
        rows.append(f"{plural(len(parts), 'part')}, {format_size(data['size'])} in upload {upload_id} of {target}")
        app.out.result(data, "\n".join(rows))
        return
    from s3mpu.admin.housekeeping import list_uploads

    uploads = list_uploads(_client(app), target.bucket, target.key)
    data = {"bucket": target.bucket, "prefix": target.key, "uploads": [u.to_dict() for u in uploads]}
    if not uploads:
        human = f"no uploads in progress in s3://{target.bucket}/{target.key}"
    else:
        rows = [f"{'initiated':20}  {'age':>8}  {'parts':>5}  {'size':>10}  upload id / object"]
        for u in uploads:
            rows.append(f"{u.initiated or '?':20}  {_age(u.age_seconds):>8}  {u.parts if u.parts is not None else '?':>5}  "
                        f"{format_size(u.size or 0):>10}  {u.upload_id}  {u.uri}")
        human = "\n".join(rows)
    app.out.result(data, human)


@click.command()
@click.argument("target", type=S3OBJECT, metavar="s3://BUCKET/KEY")
@click.argument("upload_id")
@json_option
@click.pass_obj
def abortmp(app: AppContext, target: Any, upload_id: str) -> None:
    """Abort one multipart upload by its id; its parts are freed (s3cmd's abortmp).

    Exit 66 when S3 has no such upload: S3 answers NoSuchUpload alike for a mistyped id and
    for an upload already completed or aborted, so a script that retries an abort can read
    66 as "nothing left to abort". A server that answers a repeated abort with success exits 0.

    \b
    Examples:
      s3mpu abortmp s3://media/raw.mov 2~AbCdEf...
      s3mpu listmp s3://media --json | jq -r '.uploads[] | "s3://\\(.bucket)/\\(.key) \\(.upload_id)"' \\
        | while read uri id; do s3mpu abortmp "$uri" "$id"; done
    """
    from s3mpu.admin.housekeeping import abort_upload
    from s3mpu.errors import NoInputError

    client = _client(app)
    if not abort_upload(client, target.bucket, target.key, upload_id):
        where = target.key.rsplit("/", 1)[0] + "/" if "/" in target.key else ""
        raise NoInputError(f"no upload {upload_id} of {target} in progress: the id is mistyped, or the upload "
                           "was already completed or aborted",
                           f"See the uploads in progress with: s3mpu listmp s3://{target.bucket}/{where}")
    data = {"bucket": target.bucket, "key": target.key, "upload_id": upload_id, "aborted": True}
    app.out.result(data, f"aborted upload {upload_id} of {target}")


@click.command()
@click.argument("target", type=S3URI, metavar="s3://BUCKET[/PREFIX]")
@click.option("--older-than", type=DURATION, default="7d", show_default=True,
              help="Abort uploads initiated longer ago than this (90s, 12h, 7d).")
@click.option("-n", "--dry-run", is_flag=True, help="Only report what would be aborted.")
@json_option
@click.pass_obj
def cleanup(app: AppContext, target: Any, older_than: int, dry_run: bool) -> None:
    """Abort stale multipart uploads (for cron).

    Exit status: 0 when every stale upload was aborted (or there were none, or --dry-run);
    2 when some aborts failed (re-run retries); 75 when S3 is unreachable; 77 when access
    is denied; 78 when no credentials are configured.

    \b
    Examples:
      s3mpu cleanup s3://media --dry-run
      s3mpu cleanup s3://media/incoming/ --older-than 3d --json
      17 3 * * *  s3mpu -q cleanup s3://media --older-than 7d || echo "cleanup exit $?" | mail -s s3mpu admin
    """
    from s3mpu.admin.housekeeping import cleanup as do_cleanup
    from s3mpu.errors import PartialError, S3mpuError
    from s3mpu.units import format_duration

    result = do_cleanup(_client(app), target.bucket, target.key, older_than=older_than, dry_run=dry_run)
    verb = "would abort" if dry_run else "aborted"
    lines = [f"{verb} {u.upload_id}  {u.uri}  (age {_age(u.age_seconds)})" for u in result.aborted]
    lines += [f"FAILED {u.upload_id}  {u.uri}: {getattr(e, 'message', e)}" for u, e in result.failed]
    lines.append(f"{len(result.aborted)} {verb}, {len(result.failed)} failed, {len(result.kept)} younger than "
                 f"{format_duration(older_than)} kept in s3://{target.bucket}/{target.key}")
    app.out.result(result.to_dict(), "\n".join(lines))
    if result.failed:
        first = result.failed[0][1]
        if not result.aborted and isinstance(first, S3mpuError) and all(type(e) is type(first) for _, e in result.failed):
            raise first  # the same cause everywhere (e.g. access denied): its own exit status
        raise PartialError(f"{len(result.failed)} of {len(result.failed) + len(result.aborted)} stale uploads "
                           "could not be aborted", "Re-run later to retry.")


# -- configure ---------------------------------------------------------------------------------
@click.command()
@click.option("--no-test", is_flag=True, help="Do not test the connection before saving.")
@click.pass_obj
def configure(app: AppContext, no_test: bool) -> None:
    """Write the s3cmd-format config file interactively (like 's3cmd --configure').

    Existing values are offered as defaults; other keys and sections in the file are kept,
    so the same file still works with s3cmd. The secret key is never echoed or shown.
    The file is written with mode 0600 (default ~/.s3cfg, or -c FILE).

    \b
    Examples:
      s3mpu configure
      s3mpu -c ~/.s3cfg-minio configure
    """
    from s3mpu.config import config_path_for_write, read_raw, render, settings_from_values

    path = config_path_for_write(app.config_file)
    parser = read_raw(path)
    cur = dict(parser.items("default")) if parser.has_section("default") else {}
    ours = dict(parser.items("s3mpu")) if parser.has_section("s3mpu") else {}
    click.echo(f"Configuring {path} (press Enter to keep the value in brackets).", err=True)
    v: dict[str, str] = {}
    v["access_key"] = click.prompt("Access Key", default=cur.get("access_key", ""), show_default=True, err=True)
    secret_prompt = "Secret Key" + (" (input hidden; Enter keeps the current one)" if cur.get("secret_key") else " (input hidden)")
    secret = click.prompt(secret_prompt, default="", show_default=False, hide_input=True, err=True)
    v["secret_key"] = secret or cur.get("secret_key", "")
    v["bucket_location"] = click.prompt("Default Region", default=cur.get("bucket_location", "us-east-1"), err=True)
    v["host_base"] = click.prompt("S3 Endpoint (host[:port])", default=cur.get("host_base", "s3.amazonaws.com"), err=True)
    v["host_bucket"] = click.prompt("DNS-style bucket+hostname template (use the endpoint for path-style)",
                                    default=cur.get("host_bucket", "%(bucket)s." + v["host_base"]), err=True)
    https = cur.get("use_https", "True").strip().lower() in ("1", "true", "yes", "on")
    v["use_https"] = str(click.confirm("Use HTTPS protocol", default=https, err=True))
    proxy = click.prompt("HTTP Proxy server name (empty for none)", default=cur.get("proxy_host", ""), err=True)
    v["proxy_host"] = proxy
    v["proxy_port"] = click.prompt("HTTP Proxy server port", default=cur.get("proxy_port", "3128"), err=True) if proxy else "0"
    s = {"relay_url": click.prompt("s3mpu relay URL (empty for none)", default=ours.get("relay_url", ""), err=True),
         "relay_secret_file": click.prompt("s3mpu relay secret file (empty for none)",
                                           default=ours.get("relay_secret_file", ""), err=True)}
    if not no_test and click.confirm("Test access with supplied credentials?", default=True, err=True):
        ok = _test_connection(settings_from_values(v))
        if not ok and not click.confirm("Save settings anyway?", default=False, err=True):
            from s3mpu.errors import ConfigError

            raise ConfigError(f"connection test failed; {path} was not changed",
                              "Check the keys and the endpoint, then run s3mpu configure again.")
    if not click.confirm(f"Save settings to {path}?", default=True, err=True):
        click.echo("Not saved.", err=True)
        return
    from s3mpu.manifest import write_private

    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, render(parser, v, s))
    app.out.info(f"Configuration saved to {path} (mode 0600).")


def _test_connection(settings: Any) -> bool:
    from s3mpu.config import s3_client
    from s3mpu.errors import S3mpuError
    from s3mpu.s3errors import classify_boto

    click.echo("Please wait, attempting to list all buckets...", err=True)
    try:
        s3_client(settings).list_buckets()
    except S3mpuError as exc:
        click.echo(f"Test failed: {exc.message}", err=True)
        return False
    except Exception as exc:  # noqa: BLE001 - any failure is reported, the user decides
        click.echo(f"Test failed: {classify_boto(exc, 'listing buckets').message}", err=True)
        return False
    click.echo("Success. Your access key and secret key worked fine :-)", err=True)
    return True
