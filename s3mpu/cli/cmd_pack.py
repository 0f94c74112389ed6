"""``s3mpu pack``: write the recipient side as one file to send with the manifest (see :mod:`s3mpu.pack`)."""
from __future__ import annotations

import click

from s3mpu.cli import AppContext, json_option
from s3mpu.units import format_size


@click.command()
@click.option("-o", "--output", required=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="Where to write the packed uploader (e.g. s3mpu.pyz).")
@click.option("--python", "interpreter", default="/usr/bin/env python3", show_default=True, metavar="CMD",
              help="The #! line's interpreter (for ./FILE on Unix; `python3 FILE` always works).")
@json_option
@click.pass_obj
def pack(app: AppContext, output: str, interpreter: str) -> None:
    """Write the recipient side (put, plan, status, info, request, complete, abort) as one zipapp.

    \b
    Built offline from this install: the s3mpu package and the pure-Python libraries it needs,
    without boto3, Flask or waitress. It runs on CPython 3.10 or newer, Windows and macOS
    included, with nothing installed: send it along with the manifest.

    \b
    Examples:
      s3mpu pack -o s3mpu.pyz
      s3mpu mint s3://media/raw.mov --size 10G --relay https://relay.example -o raw.json
      # the recipient, with only Python 3.10+:
      python3 s3mpu.pyz put raw.json raw.mov
    """
    from s3mpu.pack import build

    result = build(output, interpreter=interpreter)
    dists = ", ".join(f"{k} {v}" for k, v in result.distributions.items())
    for s in result.skipped:
        app.out.info(f"not packed: {s}")
    app.out.result({"path": str(result.path), "size": result.size, "version": result.version,
                    "distributions": result.distributions, "skipped": result.skipped},
                   f"wrote {result.path} ({format_size(result.size)}): s3mpu {result.version} with {dists}\n"
                   f"Send it with the manifest; the recipient runs: python3 {result.path.name} put MANIFEST FILE")
