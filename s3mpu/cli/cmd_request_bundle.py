"""``s3mpu request s3://B/PREFIX/ DIR``: plan a folder, ask the relay for a bundle, then ``put`` it.

``request`` (:mod:`s3mpu.cli.cmd_relay`) hands over here when its target names a prefix or its
argument is a folder. As for one file, the bundle is kept (mode 0600, in the state directory
unless ``--save-manifest FILE``) under a name derived from the relay, bucket, prefix and the
folder's absolute path, so re-running the same command resumes the same bundle instead of
minting another (and leaving the first one's uploads orphaned). A kept bundle is reused only
while the folder still holds exactly the files it names, with the same sizes; otherwise it is
given up (its multipart uploads aborted through the relay) and a fresh one is minted.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from s3mpu.cli import AppContext


def wants_bundle(target: Any, file: str) -> bool:
    import os

    return target.key.endswith("/") or (file != "-" and os.path.isdir(file))


def request_bundle(app: AppContext, params: dict[str, Any]) -> None:
    """``request``'s parameters (Click's ``ctx.params``) for a folder: plan, mint through the relay, put."""
    import os

    from s3mpu.errors import AccessDeniedError, S3mpuError, UsageError

    target, folder = params["target"], params["file"]
    relay_url, token, save_manifest = params.get("relay_url"), params.get("token"), params.get("save_manifest")
    if any(params.get(name) is not None for name in ("exact_size", "max_size", "memory")):
        raise UsageError("--size, --max-size and --memory are for FILE '-' (standard input), not a folder")
    from s3mpu.user.kept import kept_path

    url = relay_url or app.settings.relay_url
    if not target.key.endswith("/"):
        raise UsageError(f"{folder} is a folder, but s3://{target.bucket}/{target.key} names one object",
                         f"Name a prefix ending in '/': s3mpu request s3://{target.bucket}/{target.key}/ {folder}")
    if folder == "-" or not os.path.isdir(folder):
        raise UsageError(f"s3://{target.bucket}/{target.key} names a prefix: request uploads a folder to it, "
                         f"and {folder} is not one", f"Name the object instead: s3://{target.bucket}/{target.key}FILE")
    if not url:
        raise UsageError("request needs the relay's URL", "Pass --relay URL or set S3MPU_RELAY_URL.")
    if not token:
        raise AccessDeniedError("request needs an API token from the relay's admin", "Pass --token or set S3MPU_API_TOKEN.")
    from s3mpu.cli.cmd_plan_dir import filters_in_order

    walk_opts = {"filters": filters_in_order(click.get_current_context(), params.get("exclude") or (),
                                             params.get("include") or ()),
                 "follow_symlinks": bool(params.get("follow_symlinks"))}
    saved = save_manifest or str(kept_path(url, target.bucket, target.key, folder))
    b = _kept_bundle(app, saved, target, folder, walk_opts)
    if b is None:
        b = _mint(app, url, token, target, folder, part_size=params.get("part_size"), expires=params.get("expires"),
                  content_type=params.get("content_type"), meta=params.get("meta") or (),
                  sizes_only=bool(params.get("sizes_only")), walk_opts=walk_opts)
        from s3mpu import bundle as bundles

        Path(saved).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        bundles.dump(b, saved)
        app.out.info(f"minted {b.uri}: {len(b.objects)} objects, expires {b.expires_at}; bundle kept in {saved}")
    else:
        app.out.info(f"resuming the bundle of {b.uri} kept in {saved} (expires {b.expires_at})")
    ctx = click.get_current_context()
    put = ctx.find_root().command.get_command(ctx, "put")  # type: ignore[attr-defined]
    assert put is not None
    try:
        ctx.invoke(put, manifest_file=saved, file=folder, jobs=params.get("jobs"), retries=params.get("retries", 5),
                   limit_rate=params.get("limit_rate"), progress_mode=params.get("progress_mode", "auto"))
    except S3mpuError as exc:
        if not exc.hint:
            exc.hint = f"Resume with: s3mpu put {saved} {folder}"
        raise


def plan_body(target: Any, plan: Any, *, expires: datetime | None, content_type: str | None,
              metadata: dict[str, str]) -> dict[str, Any]:
    """The ``/v1/mint`` body of a bundle (SPEC §8), ``part_size`` per object so the relay cuts as the plan did."""
    objects = [{"path": f.path, "size": f.size, "part_size": f.part_size,
                **({"md5s": list(f.md5s)} if f.md5s is not None else {})} for f in plan.files]
    body: dict[str, Any] = {"bucket": target.bucket, "prefix": target.key, "objects": objects}
    if expires is not None:
        body["expires"] = expires.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if content_type:
        body["content_type"] = content_type  # else the relay guesses per file, as mint does
    if metadata:
        body["metadata"] = metadata
    return body


def _mint(app: AppContext, url: str, token: str, target: Any, folder: str, *, part_size: int | None,
          expires: datetime | None, content_type: str | None, meta: tuple[str, ...], sizes_only: bool = False,
          walk_opts: dict[str, Any] | None = None) -> Any:
    from s3mpu import bundle as bundles
    from s3mpu.cli.cmd_mint import _kv
    from s3mpu.cli.cmd_plan_dir import _progress
    from s3mpu.errors import S3mpuError
    from s3mpu.plan_dir import plan_dir
    from s3mpu.user.relayclient import RelayClient

    with _progress(app, folder) as progress:
        plan = plan_dir(folder, part_size=part_size, progress=progress, notice=app.out.info, sizes_only=sizes_only,
                        **(walk_opts or {}))
    body = plan_body(target, plan, expires=expires, content_type=content_type, metadata=_kv(meta, "--meta"))
    answer = RelayClient(url).mint(token, body)
    try:
        b = bundles.Bundle.from_dict(answer)
    except bundles.BundleError as exc:
        exc.hint = "The relay answered a malformed bundle: tell the relay's admin."
        raise
    try:
        _check_answer(b, target, plan)
    except S3mpuError:
        _abort_quietly(b)  # nothing of a grant this command did not ask for is left in progress
        raise
    return b


def _check_answer(b: Any, target: Any, plan: Any) -> None:
    """The relay must grant exactly what was asked: this bucket, prefix, and the plan's files and sizes."""
    from s3mpu.errors import DataError

    asked = {(f.path, f.size, f.md5s[0] if f.md5s and f.size <= f.part_size else None) for f in plan.files}
    got = {(o.path, o.size, o.md5 if not o.multipart else None) for o in b.objects}
    if (b.bucket, b.prefix) != (target.bucket, target.key) or asked != got:
        raise DataError(f"the relay's bundle does not grant what was asked ({b.uri}, {len(b.objects)} objects, "
                        f"for s3://{target.bucket}/{target.key} and {len(plan.files)} files)",
                        "Nothing was uploaded; tell the relay's admin.")


def _kept_bundle(app: AppContext, saved: str, target: Any, folder: str, walk_opts: dict[str, Any]) -> Any:
    """The kept bundle when the folder still holds exactly its files and sizes; else None (its uploads aborted)."""
    from s3mpu import bundle as bundles
    from s3mpu.errors import S3mpuError
    from s3mpu.plan_dir import walk

    if not Path(saved).is_file():
        return None
    try:
        b = bundles.load(saved)
    except S3mpuError:
        return None  # damaged or not a bundle: mint again rather than fail
    if (b.bucket, b.prefix) != (target.bucket, target.key):
        return None
    try:
        now = {(rel, size) for rel, _path, size in walk(folder, **walk_opts)}
    except S3mpuError:
        return None  # the fresh plan will report the problem
    if now == {(o.path, o.size) for o in b.objects} and b.expires > datetime.now(timezone.utc):
        return b
    app.out.warn(f"{folder} no longer holds the files of the bundle kept in {saved} (or it expired); aborting its "
                 "uploads and minting a new one")
    _abort_quietly(b)
    return None


def _abort_quietly(b: Any) -> None:
    """Best effort: free the parts of a kept bundle that will not be resumed."""
    from s3mpu.errors import S3mpuError
    from s3mpu.user.relayclient import RelayClient

    for o in b.objects:
        m = o.manifest
        if m is not None and m.relay and m.relay.url and m.relay.token:
            try:
                RelayClient(m.relay.url, retries=0).abort(m.relay.token)
            except S3mpuError:
                pass


__all__ = ["wants_bundle", "request_bundle", "plan_body"]
