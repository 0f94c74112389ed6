"""The user side: ``put``, ``complete``, ``status`` and ``abort`` of one manifest's upload.

Thin Click wrappers: policy is in :mod:`s3mpu.user.upload`, bytes in :mod:`s3mpu.user.transfer`.
``put`` never imports boto3 (the user has no credentials; start-up time matters).
"""
from __future__ import annotations

import shlex
from typing import Any

import click

from s3mpu.cli import AppContext, json_option
from s3mpu.cli.params import SIZE, complete_file, complete_json

#: MANIFEST and ``--relay``: how every command here names the upload and the relay to reach it.
manifest_argument = click.argument("manifest_file", metavar="MANIFEST", shell_complete=complete_json)
relay_option = click.option("--relay", "relay_url", metavar="URL", help="Use this relay instead of the manifest's.")


def upload_command(fn: Any) -> click.Command:
    """A command on one manifest's upload that takes nothing else: MANIFEST, --relay, --json."""
    return click.command()(manifest_argument(relay_option(json_option(click.pass_obj(fn)))))


@click.command()
@manifest_argument
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=True))
@click.option("-j", "--jobs", type=click.IntRange(1, 256),
              help="Parts sent in parallel (default 8); for a bundle, the most requests in flight (default 64; "
                   "fewer on a short round trip).")
@click.option("--retries", type=click.IntRange(0, 100), default=5, show_default=True,
              help="Attempts per part after the first, with exponential backoff.")
@click.option("--limit-rate", type=SIZE, metavar="RATE", help="Total upload rate in bytes/s, e.g. 20M.")
@click.option("--progress", "progress_mode", type=click.Choice(["auto", "rich", "plain", "tqdm", "none"]),
              default="auto", show_default=True, help="Progress display (auto: rich on a TTY, plain lines otherwise).")
@click.option("--parts", "parts_spec", metavar="RANGES",
              help="Upload only these parts, e.g. 1-100,250 (share one upload between machines).")
@click.option("--no-complete", is_flag=True, help="Upload the parts but do not complete (run 's3mpu complete' later).")
@relay_option
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=60.0, show_default=True,
              help="Seconds without progress before a connection counts as stalled and is retried.")
@click.option("--memory", type=SIZE, metavar="SIZE", help="With FILE '-': memory for buffered parts "
              "(default 256M); fewer parts are sent in parallel to fit. With a bundle: memory for small "
              "files read whole (default 256M).")
@click.option("--expect-size", type=SIZE, metavar="SIZE", help="With FILE '-': the stream must be exactly SIZE "
              "bytes, else exit 65 and nothing is completed.")
@click.option("--expect-sha256", metavar="HEX", help="With FILE '-': the stream's SHA-256, checked before the last "
              "part is sent.")
@click.option("--verify", is_flag=True,
              help="Re-read the file after the last part and compare it with what was sent before completing.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@json_option
@click.pass_obj
def put(app: AppContext, manifest_file: str, file: str, jobs: int | None, retries: int, limit_rate: int | None,
        progress_mode: str, parts_spec: str | None, no_complete: bool, relay_url: str | None, timeout: float,
        memory: int | None, expect_size: int | None, expect_sha256: str | None, verify: bool, quiet: bool) -> None:
    """Upload FILE through the presigned URLs of MANIFEST, then complete through the relay;
    or every file of DIR through a BUNDLE (s3mpu mint s3://B/PREFIX/ --plan).

    Parts are read at their offsets and sent in parallel with their MD5; each verified part
    is journalled, so re-running the same command after a crash, Ctrl-C or network failure
    resumes where it stopped. The file must fit the manifest; nothing is sent otherwise.

    FILE '-' reads standard input as it comes (pg_dump ... | s3mpu put m.json -), each part
    buffered once in memory. A re-run of a deterministic producer skips the parts the
    server already holds. The pipeline's exit status is the producer's: see the README for
    a cron line that never completes a failed dump (--no-complete, or --expect-size).

    \b
    Examples:
      s3mpu put raw.json raw.mov
      s3mpu put raw.json raw.mov -j 16 --limit-rate 20M
      s3mpu put raw.json raw.mov --parts 1-100 --no-complete     # machine A of two
      s3mpu -q put raw.json raw.mov --json                       # from cron
      pg_dump db | s3mpu put dump.json - --no-complete           # then: s3mpu complete dump.json
      s3mpu put card.bundle.json card/                           # a folder: one JSON line per file
                                                                 # with --json; exit 2 if some failed
    """
    from s3mpu.user.resume import COMMAND_LINE
    from s3mpu.user.upload import upload
    from s3mpu.cli.progress_rich import make_progress


    if quiet:
        app.out.quiet = True
    from s3mpu.cli.cmd_bundle import is_bundle_file, put_bundle_cli

    if is_bundle_file(manifest_file):
        return put_bundle_cli(app, manifest_file, file, jobs=jobs, retries=retries, limit_rate=limit_rate,
                              progress_mode=progress_mode, no_complete=no_complete, relay_url=relay_url,
                              timeout=timeout, memory=memory, parts_spec=parts_spec, expect_size=expect_size,
                              expect_sha256=expect_sha256, verify=verify)
    m = load_manifest(app, manifest_file, file)
    settings = app.settings  # no credentials needed: only jobs, CA bundle and proxy are used here
    sink = make_progress(app.out, progress_mode, label=m.key.rsplit("/", 1)[-1] or m.key)
    given = COMMAND_LINE.set(command_line(app.argv) if app.argv else None)
    try:
        result = upload(m, stdin_or(file), jobs=jobs or settings.jobs, retries=retries, limit_rate=limit_rate,
                        parts=parts_spec, complete=not no_complete, progress=sink, relay=relay_url,
                        manifest_path=manifest_file, warn=app.out.warn, info=app.out.info, read_timeout=timeout,
                        connect_timeout=min(10.0, timeout), ca_bundle=settings.ca_bundle, proxy=settings.proxy,
                        memory=memory, expect_size=expect_size, expect_sha256=expect_sha256, debug=app.out.debug,
                        verify=verify)
    finally:
        COMMAND_LINE.reset(given)
    human = summary(m.uri, result) if result.completed else f"{m.uri}: {result.message}"
    app.out.result(result.to_dict(), human)


def stdin_or(file: str) -> Any:
    """``-`` is standard input: the real descriptor (read unbuffered) or, under a test runner, its stream."""
    if file != "-":
        return file
    import sys

    stream: Any = sys.stdin.buffer  # CliRunner swaps sys.stdin for its input
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return stream
    return "-"


def command_line(argv: list[str]) -> str:
    """The invocation as typed, quoted for a shell, for "re-run" hints; a --secret-key value is
    masked (hints land in cron mail and logs, and put needs no credentials anyway)."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("REDACTED")
        elif arg.startswith("--secret-key="):
            out.append("--secret-key=REDACTED")
        else:
            out.append(arg)
        hide = arg == "--secret-key"
    return shlex.join(["s3mpu", *out])


def summary(uri: str, result: Any) -> str:
    """The last line of a completed put: sent bytes and their rate, skipped bytes apart.

    A resumed run sends only what was missing; a rate over the whole object's size would
    claim speeds that never happened.
    """
    from s3mpu.units import format_size, plural

    head = f"uploaded {uri}: {format_size(result.size)} in {plural(result.parts, 'part')}"
    skipped = max(0, result.size - result.bytes_sent)
    if result.bytes_sent == 0 and result.parts_uploaded == 0 and result.message:
        how = result.message  # e.g. "already completed earlier; the object matches the file"
    elif result.bytes_sent == 0 and result.parts_uploaded == 0:
        how = "nothing left to send" + (f" ({format_size(skipped)} already uploaded)" if skipped else "")
    else:
        how = (f"sent {format_size(result.bytes_sent)} in {result.seconds:.1f} s "
               f"({format_size(result.bytes_sent / max(result.seconds, 1e-6))}/s)")
        if skipped:
            how += f", {format_size(skipped)} already uploaded before"
    return f"{head}; {how}; ETag {result.etag}"


def load_manifest(app: AppContext, manifest_file: str, other: str | None) -> Any:
    """The manifest, or a usage error (64) naming the fix when MANIFEST and FILE are swapped.

    ``put big.bin m.json`` would otherwise report that big.bin "is not valid JSON": true, but
    the user needs to hear that the other argument is the manifest. Both checks read only the
    first bytes, so a swapped multi-GiB file is never read whole.
    """
    from s3mpu.errors import UsageError
    from s3mpu.manifest import load

    if other and "-" not in (manifest_file, other) and not _starts_json(manifest_file) and _is_manifest(other):
        argv = list(app.argv)
        if manifest_file in argv and other in argv:
            i, j = argv.index(manifest_file), argv.index(other)
            argv[i], argv[j] = other, manifest_file
            fixed = shlex.join(["s3mpu", *argv])
        else:
            fixed = shlex.join(["s3mpu", "put", other, manifest_file])
        raise UsageError(f"the arguments are swapped: {other} is the manifest and {manifest_file} the file",
                         f"The manifest comes first: {fixed}")
    return load(manifest_file)


def _head(path: str, n: int = 65536) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def _starts_json(path: str) -> bool:
    head = _head(path, 4096).lstrip(b" \t\r\n\xef\xbb\xbf")
    return head.startswith(b"{") or not head  # unreadable or empty: let load() say why


def _is_manifest(path: str) -> bool:
    head = _head(path)
    return head.lstrip().startswith(b"{") and b'"s3mpu.manifest/' in head


@upload_command
def complete(app: AppContext, manifest_file: str, relay_url: str | None) -> None:
    """Complete the upload: directly when S3 credentials are configured, else through the relay.

    Every part must be on the server with the expected size (and the MD5s this machine
    sent, when its journal has them). Completing an already-completed upload succeeds again.

    \b
    Examples:
      s3mpu complete raw.json                  # user: through the manifest's relay
      AWS_PROFILE=admin s3mpu complete raw.json  # admin: directly with credentials
    """
    from s3mpu.cli.cmd_bundle import complete_bundle_cli, is_bundle_file
    from s3mpu.completing import complete_manifest
    from s3mpu.manifest import load

    if is_bundle_file(manifest_file):
        return complete_bundle_cli(app, manifest_file, relay_url)
    m = load(manifest_file)
    reply, how = complete_manifest(m, app.settings, relay_url=relay_url, manifest_path=manifest_file)
    data = {"key": m.key, "bucket": m.bucket, "etag": reply.get("etag"), "size": reply.get("size"),
            "parts": reply.get("parts"), "completed": True}
    app.out.result(data, f"completed {m.uri} {how}: {reply.get('size')} bytes, ETag {reply.get('etag')}")


@click.command()
@manifest_argument
@click.argument("file", metavar="[FILE]", required=False, shell_complete=complete_file)
@relay_option
@json_option
@click.pass_obj
def status(app: AppContext, manifest_file: str, file: str | None, relay_url: str | None) -> None:
    """Show the upload's state: in progress (which parts are done), completed, or aborted.

    The server's view comes from the relay, or from the manifest's presigned ListParts URL
    when the relay is unreachable. With FILE, also checks that the file fits the manifest.
    Exit status: 0 in progress or completed; 66 when the upload no longer exists (aborted,
    cleaned up or expired: ask the admin for a new manifest).

    \b
    Examples:
      s3mpu status raw.json
      s3mpu status raw.json raw.mov --json     # "state": in_progress | completed | aborted | gone | unknown
    """
    from s3mpu.errors import NoInputError
    from s3mpu.manifest import load
    from s3mpu.units import format_duration, format_size
    from s3mpu.user.integrity import ranges
    from s3mpu.user.status import ABORTED, COMPLETED, GONE, upload_status
    from s3mpu.user.upload import check_file, make_relay
    from s3mpu.cli.cmd_bundle import is_bundle_file, status_bundle_cli

    if is_bundle_file(manifest_file):
        return status_bundle_cli(app, manifest_file, file, relay_url)
    m = load(manifest_file)
    size = check_file(m, file).size if file else None
    relay = make_relay(m, relay_url, retries=1)  # a status is a quick look: do not wait long for a relay
    data = upload_status(m, relay, size)
    left = data["seconds_left"]
    head = [f"object      {m.uri} (upload {m.upload_id[:24]}{'...' if len(m.upload_id) > 24 else ''})"]
    state = data["state"]
    if state == COMPLETED:
        lines = head + [f"state       completed: {format_size(int(data.get('size', 0)))}, ETag {data.get('etag')}"]
    elif state in (ABORTED, GONE):
        why = ("aborted, cleaned up or expired" if state == ABORTED
               else "completed, aborted or expired (this manifest names no relay to tell which)")
        lines = head + [f"state       the upload no longer exists: {why}"]
    else:
        want = {p.number: p.size for p in (m.parts_for_file(size) if size is not None else m.parts)}
        on_server = data["parts_server"]
        lines = head + [
            "state       " + ("in progress" if state != "unknown" else "unknown (" + "; ".join(data["problems"]) + ")"),
            f"expires     {m.expires_at} ("
            + (f"in {format_duration(left)}" if left > 0 else f"EXPIRED {format_duration(-left)} ago") + ")",
            f"journal     {len(data['parts_journal'])} of {len(want)} parts"
            + (f" (file {data['journal_file']})" if data["journal_file"] else " (no journal on this machine)"),
            f"server      {len(on_server)} of {len(want)} parts ({format_size(sum(want[n] for n in on_server))}, "
            f"via {data['server_source']})" if on_server is not None else "server      unknown"]
        if data["parts_mismatched"]:
            lines.append(f"mismatched  {ranges(data['parts_mismatched'])}: the server holds other bytes than this "
                         f"machine sent; re-run s3mpu put {manifest_file} FILE to send them again")
        missing = data["parts_missing"]
        lines.append(f"missing     {ranges(missing) if missing else 'none: ready to complete (s3mpu complete ' + manifest_file + ')'}")
    app.out.result(data, "\n".join(lines))
    if state in (ABORTED, GONE):
        raise NoInputError(f"the upload of {m.uri} no longer exists",
                           "It was completed, aborted or expired; ask the admin to mint a new manifest if the object "
                           "is not there." if state == GONE else "Ask the admin to mint a new manifest.")


@upload_command
def abort(app: AppContext, manifest_file: str, relay_url: str | None) -> None:
    """Abort the upload: S3 frees its parts and the manifest becomes useless.

    Tries the relay, then the manifest's presigned abort URL, then S3 credentials.

    \b
    Examples:
      s3mpu abort raw.json
      s3mpu abort raw.json --json
    """
    from s3mpu.cli.cmd_bundle import abort_bundle_cli, is_bundle_file
    from s3mpu.completing import abort_manifest
    from s3mpu.manifest import load

    if is_bundle_file(manifest_file):
        return abort_bundle_cli(app, manifest_file, relay_url)
    m = load(manifest_file)
    how = abort_manifest(m, app.settings, relay_url=relay_url)
    app.out.result({"key": m.key, "bucket": m.bucket, "upload_id": m.upload_id, "aborted": True},
                   f"aborted upload of {m.uri} {how}")


@click.command()
@manifest_argument
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False), shell_complete=complete_file)
@relay_option
@json_option
@click.pass_obj
def verify(app: AppContext, manifest_file: str, file: str, relay_url: str | None) -> None:
    """Check that the uploaded object holds exactly FILE's bytes (no credentials needed).

    Reads FILE once and compares its size and ETag (the composite of its part MD5s, or its MD5)
    with the completed object, as the manifest's relay reports it. Exit 0 when they match, 65
    when they differ, 66 when the upload is not complete (or was aborted).

    \b
    Examples:
      s3mpu verify raw.json raw.mov
      s3mpu verify raw.json raw.mov --json     # "match": true, "checked": "size and composite ETag ..."
    """
    from s3mpu.cli.cmd_bundle import is_bundle_file
    from s3mpu.errors import UsageError
    from s3mpu.manifest import load
    from s3mpu.user.upload import make_relay
    from s3mpu.user.verify import verify_upload

    if is_bundle_file(manifest_file):
        raise UsageError("verify takes a manifest (one file); a bundle's objects are shown by status",
                         f"s3mpu status {manifest_file} DIR")
    m = load(manifest_file)
    data = verify_upload(m, file, make_relay(m, relay_url, retries=1), manifest_file)
    app.out.result(data, f"{m.uri} holds exactly {file}: {data['checked']} match ({data['size']} bytes, "
                         f"ETag {data['etag']}; via {data['via']})")
