"""``s3mpu info``: a human (or JSON) summary of a manifest, signatures redacted."""
from __future__ import annotations

import click

from s3mpu.cli import AppContext, json_option
from s3mpu.cli.params import complete_json


@click.command()
@click.argument("manifest_file", metavar="MANIFEST", shell_complete=complete_json)
@click.option("--show-urls", is_flag=True, help="Include the part URLs with their signatures (bearer secrets!).")
@json_option
@click.pass_obj
def info(app: AppContext, manifest_file: str, show_urls: bool) -> None:
    """Summarise a manifest: object, size, parts, expiry, relay.

    URL signatures and the relay token are never printed unless --show-urls is given.

    \b
    Examples:
      s3mpu info raw.json
      s3mpu info raw.json --json | jq .expires_at
      s3mpu info s3mpu.pyz                       # which version a packed uploader carries
    """
    from s3mpu.cli.cmd_bundle import info_bundle_cli, is_bundle_file
    from s3mpu.manifest import load
    from s3mpu.pack import read_info
    from s3mpu.units import format_duration, format_size
    from s3mpu.user.tail import signed_length

    packed = read_info(manifest_file)  # an uploader from `s3mpu pack`: which version it carries
    if packed is not None:
        libs = ", ".join(f"{k} {v}" for k, v in sorted(packed.get("distributions", {}).items()))
        app.out.result(packed, f"{manifest_file}: the s3mpu {packed['s3mpu']} recipient side, packed "
                               f"{packed.get('built_at', '?')}, for Python {packed.get('python', '>=3.10')}; with {libs}")
        return
    if is_bundle_file(manifest_file):
        return info_bundle_cli(app, manifest_file, show_urls)
    m = load(manifest_file)
    data = m.to_dict() if show_urls else m.redacted()
    left = m.seconds_left()
    data["seconds_left"] = int(left)
    data["lengths_bound"] = bound = all(signed_length(p.url) for p in m.parts)  # SPEC §5
    expiry = f"in {format_duration(left)}" if left > 0 else f"EXPIRED {format_duration(-left)} ago"
    lines = [
        f"object      {m.uri}",
        f"endpoint    {m.endpoint} ({m.region}, {m.signature_version})",
        f"upload id   {m.upload_id}",
        f"size        {'up to ' if m.size_is_max else ''}{format_size(m.size)} ({m.size} bytes)",
        f"parts       {len(m.parts)} of {format_size(m.part_size)}"
        + (" (content-bound: MD5 signed)" if any(p.md5 for p in m.parts) else ""),
        f"expires     {m.expires_at} ({expiry})",
        f"relay       {m.relay.url if m.relay and m.relay.url else '(none)'}",
        "lengths     " + ("signed: S3 refuses a part of another size" + (" (the last part's URL comes from the relay)"
                                                                         if m.size_is_max else "") if bound else
                         "not bound: the URLs sign no Content-Length (" + ("SigV2 cannot sign one" if
                         m.signature_version != "s3v4" else "a max-size manifest without a relay")
                         + "), so S3 accepts parts of any size"),
    ]
    if m.content_type:
        lines.append(f"type        {m.content_type}")
    if show_urls:
        lines += [f"part {p.number:>5}  {p.url}" for p in m.parts]
    app.out.result(data, "\n".join(lines))
