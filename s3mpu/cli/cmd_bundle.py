"""The user side of a bundle (SPEC §8): ``put``, ``status``, ``info``, ``complete`` and ``abort`` of BUNDLE.

These are not commands of their own: ``put``, ``status``, ``info``, ``complete`` and ``abort``
look at their first argument and hand a bundle here (:func:`is_bundle_file`), so a user types
the same command for a folder as for a file. Policy is in :mod:`s3mpu.user.bundle_put` and
:mod:`s3mpu.user.bundle_status`; this module parses and prints.
"""
from __future__ import annotations

from typing import Any

from s3mpu.cli import AppContext

_HEAD = 4096


def is_bundle_file(path: str) -> bool:
    """Whether ``path`` holds a bundle: its "format" is its first field (written so by :mod:`s3mpu.bundle`)."""
    if path == "-":
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
    except OSError:
        return False
    return b'"s3mpu.bundle/' in head


def put_bundle_cli(app: AppContext, bundle_file: str, directory: str, *, jobs: int | None, retries: int,
                   limit_rate: int | None, progress_mode: str, no_complete: bool, relay_url: str | None,
                   timeout: float, memory: int | None, parts_spec: str | None, expect_size: int | None,
                   expect_sha256: str | None, verify: bool) -> None:
    """``s3mpu put BUNDLE DIR``: one line per object with --json, a summary, the exit status of SPEC §8."""
    from s3mpu.cli.cmd_user import command_line
    from s3mpu.cli.progress_bundle import make_bundle_progress
    from s3mpu.errors import UsageError
    from s3mpu.units import format_size
    from s3mpu.user.bundle_put import put_bundle
    from s3mpu.user.resume import COMMAND_LINE

    if parts_spec or expect_size is not None or expect_sha256 or verify:
        raise UsageError("--parts, --expect-size, --expect-sha256 and --verify are for one file, not a bundle",
                         f"Leave them out: s3mpu put {bundle_file} {directory}")
    if directory == "-":
        raise UsageError("a bundle uploads a folder, not standard input", f"s3mpu put {bundle_file} DIR")
    rerun = command_line(app.argv) if app.argv else f"s3mpu put {bundle_file} {directory}"
    given = COMMAND_LINE.set(rerun)

    def one(r: Any) -> None:
        if app.out.json_mode:
            app.out.event(r.to_dict())
        elif r.error is not None:
            app.out.warn(r.error.message)

    try:
        result = put_bundle(bundle_file, directory, jobs=jobs or None, retries=retries, limit_rate=limit_rate,
                            complete=not no_complete, relay=relay_url, bundle_path=bundle_file,
                            progress=lambda b: make_bundle_progress(app.out, progress_mode, label=b.uri),
                            warn=app.out.warn, info=app.out.info, on_object=one, read_timeout=timeout,
                            connect_timeout=min(10.0, timeout), ca_bundle=app.settings.ca_bundle,
                            proxy=app.settings.proxy, memory=memory, rerun=rerun)
    finally:
        COMMAND_LINE.reset(given)
    if result.unnamed:
        app.out.warn(f"{result.unnamed} file(s) in {directory} are not in the bundle and were not uploaded "
                     f"(e.g. {', '.join(result.unnamed_examples[:3])})")
    if app.out.json_mode:
        app.out.event(result.to_dict())
    elif result.finished_before:
        app.out.result(None, f"{result.uri}: all {result.objects} objects were uploaded by an earlier run of this "
                             "bundle; nothing to send")
    else:
        done_now = result.done - result.skipped
        line = (f"{result.uri}: {result.done} of {result.objects} objects uploaded"
                + (f" ({result.skipped} before this run)" if result.skipped else "")
                + f"; sent {format_size(result.bytes_sent)} in {result.seconds:.1f} s"
                + (f" ({format_size(result.bytes_sent / max(result.seconds, 1e-6))}/s)" if done_now else ""))
        if result.uploaded:
            line += (f"; {result.uploaded} multipart object(s) have every part but are not completed: "
                     f"s3mpu complete {bundle_file}")
        app.out.result(None, line)
    err = result.error()
    if err is not None:
        raise err


def status_bundle_cli(app: AppContext, bundle_file: str, directory: str | None, relay_url: str | None) -> None:
    """``s3mpu status BUNDLE [DIR]``: each object's state and a total line."""
    from s3mpu import bundle as bundles
    from s3mpu.user.bundle_status import bundle_status

    b = bundles.load(bundle_file)
    data = bundle_status(b, relay_url=relay_url, directory=directory)
    lines = [f"bundle      {b.uri} ({len(b.objects)} objects, expires {b.expires_at})"]
    lines += [f"{o['state']:<12}{o['path']}" + (f"  ({o['detail']})" if o.get("detail") else "")
              for o in data["objects"]]
    lines.append("total       " + ", ".join(f"{n} {k}" for k, n in data["totals"].items() if n))
    app.out.result(data, "\n".join(lines))


def info_bundle_cli(app: AppContext, bundle_file: str, show_urls: bool) -> None:
    """``s3mpu info BUNDLE``: what it grants, without URL signatures unless ``--show-urls``."""
    from s3mpu import bundle as bundles
    from s3mpu.units import format_size

    b = bundles.load(bundle_file)
    data = b.to_dict() if show_urls else b.redacted()
    multi = sum(1 for o in b.objects if o.multipart)
    human = "\n".join([
        f"bundle      {b.uri}",
        f"endpoint    {b.endpoint} ({b.region}, {'SigV4' if b.signature_version == 's3v4' else 'SigV2'})",
        f"objects     {len(b.objects)} ({len(b.objects) - multi} single PUTs, {multi} multipart), "
        f"{format_size(b.total_size)}",
        f"expires     {b.expires_at}",
        f"relay       {b.relay_url or '(none)'}",
        *[f"  {format_size(o.size):>10}  {o.path}" for o in b.objects[:20]],
        *([f"  ... and {len(b.objects) - 20} more (--json lists every one)"] if len(b.objects) > 20 else [])])
    app.out.result(data, human)


def complete_bundle_cli(app: AppContext, bundle_file: str, relay_url: str | None) -> None:
    """``s3mpu complete BUNDLE``: complete every multipart object whose parts are all on the server."""
    _each_multipart(app, bundle_file, relay_url, "complete", "no multipart objects to complete")


def abort_bundle_cli(app: AppContext, bundle_file: str, relay_url: str | None) -> None:
    """``s3mpu abort BUNDLE``: abort every multipart upload; single PUTs have nothing to abort."""
    _each_multipart(app, bundle_file, relay_url, "abort", "no multipart uploads to abort")


def _each_multipart(app: AppContext, bundle_file: str, relay_url: str | None, action: str, none: str) -> None:
    from s3mpu import bundle as bundles
    from s3mpu.user.bundle_status import for_each_multipart

    b = bundles.load(bundle_file)
    data = for_each_multipart(b, action, app.settings, relay_url, bundle_file)
    app.out.result(data, "\n".join(f"{r['state']:<12}{r['path']}" + (f"  ({r['error']})" if r.get("error") else "")
                                   for r in data["objects"]) or f"{b.uri}: {none}")
    _raise_first(data)


def _raise_first(data: dict[str, Any]) -> None:
    from s3mpu.errors import PartialError

    bad = [r for r in data["objects"] if r.get("error")]
    if bad:
        raise PartialError(f"{len(bad)} of {len(data['objects'])} objects failed: {bad[0]['path']}: {bad[0]['error']}",
                           "Fix the cause, then run the same command again.")
