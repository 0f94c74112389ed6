"""``s3mpu mint s3://B/PREFIX/ --plan DIRPLAN``: the Click side of bundle minting.

``mint`` (:mod:`s3mpu.cli.cmd_mint`) reads ``--plan`` once and hands a directory plan, or any
target naming a prefix, to :func:`mint_prefix`; the core is :mod:`s3mpu.admin.mint_bundle`.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from s3mpu.cli import AppContext


def read_plan(plan_file: str) -> tuple[Any, str]:
    """The parsed JSON of a plan file (``-`` is stdin) and its name: 66 missing, 65 not JSON."""
    from s3mpu.manifest import parse_json, read_document
    from s3mpu.plan_dir import DirPlanError

    raw, name = read_document(plan_file, "plan", "Make one with: s3mpu plan FILE|DIR -o PLAN")
    return parse_json(raw, name, "plan", DirPlanError), name


def refuse_prefix_without_dir_plan(target: Any, plan_data: Any) -> None:
    """A target ending in '/' (or a bare bucket) names a prefix: only a directory plan can fill it."""
    from s3mpu.errors import UsageError

    uri = f"s3://{target.bucket}/{target.key}"
    if plan_data is None:
        raise UsageError(f"{uri} ends in '/': it names a prefix, and a prefix is minted from a folder's plan "
                         "(--plan); nothing was created",
                         f"Run s3mpu plan DIR -o dir.plan.json, then s3mpu mint {uri} --plan dir.plan.json "
                         "(or name one object: s3://BUCKET/KEY).")
    raise UsageError(f"--plan holds one file's plan, but {uri} names a prefix; nothing was created",
                     f"Name the object (s3://{target.bucket}/{target.key}FILE), or plan the folder "
                     "(s3mpu plan DIR) for a bundle.")


def mint_prefix(app: AppContext, target: Any, plan_data: Any, plan_name: str, *, expires: datetime | None,
                content_type: str | None, acl: str | None, storage_class: str | None, metadata: dict[str, str],
                relay_url: str | None, output: str, force: bool, refused: dict[str, Any]) -> None:
    from s3mpu import bundle as bundles
    from s3mpu.admin.mint_bundle import BundleRequest, abort_all, files_from_plan, mint_bundle
    from s3mpu.errors import NoInputError, UsageError
    from s3mpu.plan_dir import DirPlan, DirPlanError

    uri = f"s3://{target.bucket}/{target.key}"
    if target.key and not target.key.endswith("/"):
        raise UsageError(f"--plan holds a folder's plan, but {uri} names one object; nothing was created",
                         f"Name a prefix ending in '/': s3mpu mint {uri}/ --plan ...")
    given = [name for name, value in refused.items() if value]
    if given:
        raise UsageError(f"{', '.join(given)} cannot be used with a bundle (the plan fixes every file's size "
                         "and layout)", "Drop them, or re-plan the folder.")
    try:
        plan = DirPlan.from_dict(plan_data)
    except DirPlanError as exc:
        exc.message = f"{plan_name}: {exc.message}"
        raise
    _check_output(output, force)
    settings = app.settings
    client = app.s3_client()
    req = BundleRequest(bucket=target.bucket, prefix=target.key, files=files_from_plan(plan), expires=expires,
                        content_type=content_type, metadata=metadata, acl=acl, storage_class=storage_class,
                        relay_url=relay_url or settings.relay_url)
    b = mint_bundle(client, req, endpoint=client.meta.endpoint_url, region=client.meta.region_name,
                    relay_secret=settings.relay_secret, signature_version=settings.signature_version)
    try:
        bundles.dump(b, output)
    except OSError as exc:
        abort_all(client, [o.manifest for o in b.objects if o.manifest is not None])
        raise NoInputError(f"cannot write the bundle to {output}: {exc.strerror or exc}; its uploads were aborted",
                           "Check that the directory exists and is writable, then mint again.") from None
    _report(app, b, output)


def _check_output(output: str, force: bool) -> None:
    """Refuse an unwritable or existing -o before any upload is created."""
    import os

    from s3mpu.errors import NoInputError, UsageError

    if output == "-":
        return
    parent = Path(output).expanduser().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise NoInputError(f"cannot write the bundle to {output}: {parent} is not a writable directory",
                           "Create the directory or choose another -o path; nothing was created on S3.")
    if os.path.lexists(output) and not force:
        raise UsageError(f"{output} already exists; nothing was created",
                         "Choose another -o FILE, or pass --force to overwrite it (abort the bundle it holds first: "
                         f"s3mpu abort {output}).")


def _report(app: AppContext, b: Any, output: str) -> None:
    from s3mpu.units import format_size, plural

    multipart = sum(1 for o in b.objects if o.multipart)
    data = {"bundle": output, "id": b.id, "bucket": b.bucket, "prefix": b.prefix, "objects": len(b.objects),
            "single_put": len(b.objects) - multipart, "multipart": multipart, "size": b.total_size,
            "expires_at": b.expires_at, "relay": b.relay_url}
    human = (f"minted {b.uri}: {plural(len(b.objects), 'object')} ({format_size(b.total_size)}; "
             f"{len(b.objects) - multipart} single PUT, {multipart} multipart), expires {b.expires_at}"
             + (f", bundle in {output}" if output != "-" else ""))
    if output == "-":  # stdout carries the bundle
        if not app.out.json_mode:
            app.out.info(human)
    else:
        app.out.result(data, human)


__all__ = ["read_plan", "mint_prefix", "refuse_prefix_without_dir_plan"]
