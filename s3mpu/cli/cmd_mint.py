"""``s3mpu mint``: the admin side (create the upload, presign, write the manifest)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from s3mpu.cli import AppContext, json_option
from s3mpu.cli.cmd_plan_dir import FilterOption
from s3mpu.cli.params import EXPIRES, S3URI, SIZE, complete_json


def _kv(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in values:
        k, sep, v = item.partition("=") if "=" in item else item.partition(":")
        if not sep or not k.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        out[k.strip()] = v.strip()
    return out


@click.command()
@click.argument("target", metavar="s3://BUCKET/KEY|PREFIX/", type=S3URI, required=False)
@click.option("--size", type=SIZE, help="Exact size of the file (e.g. 10G, 5242880).")
@click.option("--max-size", type=SIZE, help="Upper bound: the file may be smaller; unused parts are skipped.")
@click.option("--plan", "plan_file", metavar="PLAN", shell_complete=complete_json,
              help="Plan from 's3mpu plan': binds each part's MD5 into its URL (a folder's plan mints a bundle).")
@click.option("--part-size", type=SIZE, help="Part size (default: auto, at least 8 MiB and at most 10,000 parts).")
@click.option("--expires", type=EXPIRES, help="7d, 12h, +3600, an epoch or ISO-8601 (default 7d, SigV4's maximum).")
@click.option("--mime-type", "content_type", metavar="TYPE", help="Content-Type of the object.")
@click.option("--acl-public", is_flag=True, help="Make the object public-read (s3cmd spelling).")
@click.option("--acl", metavar="ACL", help="Canned ACL, e.g. private, public-read, bucket-owner-full-control.")
@click.option("--storage-class", metavar="CLASS", help="x-amz-storage-class, e.g. STANDARD_IA, GLACIER_IR.")
@click.option("--add-header", multiple=True, metavar="NAME:VALUE", help="Extra header for the upload (repeatable).")
@click.option("--meta", multiple=True, metavar="K=V", help="x-amz-meta-K metadata (repeatable).")
@click.option("--relay", "relay_url", metavar="URL", help="Relay that completes the upload (token signed with the relay secret).")
@click.option("--refresh", "refresh_file", metavar="MANIFEST", shell_complete=complete_json,
              help="Re-sign an existing manifest's upload with a new expiry.")
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE",
              help="Where to write the manifest (mode 0600; - is stdout).")
@click.option("--force", is_flag=True, help="Overwrite an existing -o FILE (it may be the only handle on another upload).")
@json_option
@click.pass_obj
def mint(app: AppContext, target: Any, size: int | None, max_size: int | None, plan_file: str | None,
         part_size: int | None, expires: datetime | None, content_type: str | None, acl_public: bool, acl: str | None,
         storage_class: str | None, add_header: tuple[str, ...], meta: tuple[str, ...], relay_url: str | None,
         refresh_file: str | None, output: str, force: bool) -> None:
    """Create a multipart upload and write a manifest of presigned part URLs.

    The manifest is a bearer credential for this one upload: hand it to the user by any
    means (mail, USB stick, ticket). It is written with mode 0600.

    A target ending in '/' names a prefix: with a folder's plan (s3mpu plan DIR) it mints a
    bundle, one object per file at PREFIX + its path (a single presigned PUT for a file of one
    part, a multipart upload for a larger one), with the content type guessed per file.

    \b
    Examples:
      s3mpu mint s3://media/raw.mov --size 10G -o raw.json
      s3mpu mint s3://media/in/raw.mov --max-size 50G --relay https://relay.example:8080 -o m.json
      s3mpu mint s3://media/raw.mov --plan raw.plan.json --expires 12h -o raw.json
      s3mpu mint --refresh raw.json --expires 3d -o raw-new.json
      s3mpu mint s3://media/card/ --plan card.plan.json --relay https://relay.example -o card.bundle.json
    """
    from s3mpu import manifest as manifests
    from s3mpu.admin.mint import MintRequest, mint as do_mint, refresh

    old = manifests.load(refresh_file) if refresh_file else None
    _check_output(output)
    if not force:
        _refuse_overwrite(output, old.upload_id if old else None)
    settings = app.settings
    client = app.s3_client()
    if refresh_file and old is not None:
        new = refresh(client, old, expires=expires, relay_secret=settings.relay_secret, relay_url=relay_url)
        manifests.dump(new, output)
        _report(app, new, output, refreshed=True)
        return
    if target is None:
        raise click.UsageError("mint needs s3://BUCKET/KEY (or --refresh MANIFEST)")
    md5s = sha256 = None
    plan_data = None
    if plan_file:
        from s3mpu.cli.cmd_mint_bundle import read_plan

        plan_data, plan_name = read_plan(plan_file)
    from s3mpu.plan_dir import is_dir_plan

    if is_dir_plan(plan_data):  # a folder's plan: a bundle under the prefix
        from s3mpu.cli.cmd_mint_bundle import mint_prefix

        mint_prefix(app, target, plan_data, plan_name, expires=expires, content_type=content_type,
                    acl="public-read" if acl_public else acl, storage_class=storage_class,
                    metadata=_kv(meta, "--meta"), relay_url=relay_url, output=output, force=force,
                    refused={"--size": size, "--max-size": max_size, "--part-size": part_size,
                             "--add-header": add_header})
        return
    if not target.key or target.key.endswith("/"):
        from s3mpu.cli.cmd_mint_bundle import refuse_prefix_without_dir_plan

        refuse_prefix_without_dir_plan(target, plan_data)
    if plan_file:
        from s3mpu.admin.plan import Plan

        plan = Plan.from_dict(plan_data)
        if size is not None or max_size is not None:
            raise click.UsageError("--plan already gives the size; drop --size/--max-size")
        if part_size is not None and part_size != plan.part_size:
            raise click.UsageError(f"--part-size {part_size} differs from the plan's part size {plan.part_size}; "
                                   "drop --part-size (the plan fixes the layout) or make a new plan with it")
        size, part_size, md5s, sha256 = plan.size, plan.part_size, plan.md5s, plan.sha256
    headers = _kv(add_header, "--add-header")
    content_type = content_type or headers.pop("Content-Type", None) or headers.pop("content-type", None)
    req = MintRequest(
        bucket=target.bucket, key=target.key, size=size, max_size=max_size,
        part_size=part_size or settings.part_size, expires=expires, content_type=content_type,
        metadata=_kv(meta, "--meta"), acl="public-read" if acl_public else acl, storage_class=storage_class,
        extra_headers=headers,
        relay_url=relay_url or settings.relay_url, md5s=md5s, sha256=sha256)
    m = do_mint(client, req, endpoint=client.meta.endpoint_url, region=client.meta.region_name,
                relay_secret=settings.relay_secret, signature_version=settings.signature_version)
    try:
        manifests.dump(m, output)
    except OSError as exc:
        from s3mpu.admin.housekeeping import abort_upload

        from s3mpu.errors import NoInputError

        abort_upload(client, m.bucket, m.key, m.upload_id)
        raise NoInputError(f"cannot write the manifest to {output}: {exc.strerror or exc}; the upload was aborted",
                           "Check that the directory exists and is writable, then mint again.") from None
    _report(app, m, output)


def _check_output(output: str) -> None:
    """Refuse an unwritable -o before an upload is created, rather than creating and aborting it."""
    import os
    from pathlib import Path

    from s3mpu.errors import NoInputError

    if output == "-":
        return
    parent = Path(output).expanduser().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise NoInputError(f"cannot write the manifest to {output}: {parent} is not a writable directory",
                           "Create the directory or choose another -o path; nothing was created on S3.")


def _refuse_overwrite(output: str, same_upload: str | None) -> None:
    """Exit 64 rather than overwrite a manifest: it may be the only handle on an upload in progress.

    Re-writing a manifest of the same upload (``mint --refresh m.json -o m.json``) loses nothing
    and is allowed; the message names the upload the old file holds so it can be found or aborted.
    """
    import os

    from s3mpu.errors import S3mpuError, UsageError

    if output == "-" or not os.path.lexists(output):
        return
    try:
        from s3mpu import manifest as manifests

        held = manifests.load(output)
    except S3mpuError:
        raise UsageError(f"{output} already exists", "Choose another -o FILE, or pass --force to overwrite it.") from None
    if same_upload is not None and held.upload_id == same_upload:
        return
    raise UsageError(f"{output} already exists and holds the manifest of upload {held.upload_id} of {held.uri}; "
                     "nothing was created",
                     f"Choose another -o FILE, or pass --force to overwrite it (abort that upload first: "
                     f"s3mpu abort {output}).")


def _report(app: AppContext, m: Any, output: str, refreshed: bool = False) -> None:
    from s3mpu.units import format_size, plural

    data = {"bucket": m.bucket, "key": m.key, "upload_id": m.upload_id, "size": m.size,
            "size_is_max": m.size_is_max, "part_size": m.part_size, "parts": len(m.parts),
            "expires_at": m.expires_at, "manifest": output, "relay": m.relay.url if m.relay else None}
    verb = "refreshed" if refreshed else "minted"
    human = (f"{verb} {m.uri}: {plural(len(m.parts), 'part')} of {format_size(m.part_size)}"
             f"{' (max ' if m.size_is_max else ' ('}{format_size(m.size)}), expires {m.expires_at}"
             + (f", manifest in {output}" if output != "-" else ""))
    if output == "-":  # stdout carries the manifest: the report goes to stderr
        if app.out.json_mode:
            return
        app.out.info(human)
    else:
        app.out.result(data, human)


@click.command()
@click.argument("file", metavar="FILE|DIR", type=click.Path(allow_dash=False))
@click.option("--part-size", type=SIZE, help="Part size (default: auto, at least 8 MiB and at most 10,000 parts).")
@click.option("-o", "--output", default="-", show_default=True, metavar="PLAN", help="Where to write the plan (- is stdout).")
@click.option("--sizes-only", is_flag=True, help="DIR: sizes without hashing (an exact-size bundle, no Content-MD5).")
@click.option("--exclude", multiple=True, metavar="GLOB", cls=FilterOption,
              help="DIR: leave out paths matching GLOB (repeatable; with --include, the last match wins).")
@click.option("--include", multiple=True, metavar="GLOB", cls=FilterOption,
              help="DIR: keep paths matching GLOB that an earlier --exclude left out (repeatable).")
@click.option("--follow-symlinks", is_flag=True, help="DIR: follow symlinks inside DIR (default: skip them).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), help="DIR: files hashed in parallel (default 2 per CPU).")
@json_option
@click.pass_context
def plan(ctx: click.Context, file: str, part_size: int | None, output: str, sizes_only: bool,
         exclude: tuple[str, ...], include: tuple[str, ...], follow_symlinks: bool, jobs: int | None) -> None:
    """Hash a file (or every file of a folder) into a plan for a content-bound manifest or bundle.

    User side, no credentials. A file's plan holds the part layout, each part's MD5 and the
    file's SHA-256: the admin mints with --plan, each part URL then signs its Content-MD5, so S3
    itself refuses any other bytes. A folder's plan lists every regular file (its path relative
    to DIR, as stored on disk) the same way, for a bundle (mint s3://B/PREFIX/ --plan). Symlinks
    and special files are skipped with a notice. The plan holds no secret.

    \b
    Examples:
      s3mpu plan raw.mov -o raw.plan.json
      s3mpu plan raw.mov --part-size 64M -o raw.plan.json
      s3mpu mint s3://media/raw.mov --plan raw.plan.json -o raw.json   # admin
      s3mpu plan card/ -o card.plan.json
      s3mpu plan build/ --exclude '*' --include '*.tar.gz' --sizes-only -o build.plan.json
      s3mpu mint s3://media/card/ --plan card.plan.json -o card.bundle.json   # admin
    """
    import os

    app: AppContext = ctx.obj
    if os.path.isdir(file):
        from s3mpu.cli.cmd_plan_dir import filters_in_order, plan_directory

        plan_directory(app, file, part_size or app.settings.part_size, output, sizes_only=sizes_only,
                       filters=filters_in_order(ctx, exclude, include), follow_symlinks=follow_symlinks, jobs=jobs)
        return
    if sizes_only or exclude or include or follow_symlinks or jobs:
        raise click.UsageError("--sizes-only, --exclude, --include, --follow-symlinks and --jobs are for a folder; "
                               f"{file} is not one")
    from s3mpu.admin.plan import dump_plan, make_plan
    from s3mpu.units import format_size, plural

    p = _hash_with_progress(app, file, part_size or app.settings.part_size, make_plan)
    dump_plan(p, output)
    data = {"file": file, "size": p.size, "part_size": p.part_size, "parts": len(p.parts), "sha256": p.sha256,
            "plan": output}
    human = f"planned {file}: {plural(len(p.parts), 'part')} of {format_size(p.part_size)} ({p.size} bytes), sha256 {p.sha256}"
    if output == "-":
        if not app.out.json_mode:
            app.out.info(human)
    else:
        app.out.result(data, human + f", plan in {output}")


def _hash_with_progress(app: AppContext, file: str, part_size: int | None, make_plan: Any) -> Any:
    """A transient rich bar while hashing on a TTY (large files take minutes); nothing otherwise."""
    import os

    if not app.out.is_tty or app.out.quiet or app.out.json_mode:
        return make_plan(file, part_size)
    try:
        total = os.stat(file).st_size
    except OSError:
        return make_plan(file, part_size)  # it raises the proper NoInputError
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from s3mpu.cli.progress_rich import binary_speed_column

    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(binary_units=True),
               binary_speed_column(), TimeRemainingColumn())
    with Progress(*columns, console=app.out.console, transient=True) as bar:
        task = bar.add_task(f"hashing {os.path.basename(file)}", total=total)
        return make_plan(file, part_size, progress=lambda n: bar.advance(task, n))
