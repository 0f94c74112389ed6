"""``s3mpu demo``: the whole flow on an embedded local S3, no account needed."""
from __future__ import annotations

from dataclasses import asdict

import click

from s3mpu.errors import DataError
from s3mpu.cli import AppContext, json_option
from s3mpu.cli.params import SIZE


@click.command()
@click.option("--size", type=SIZE, default="64M", show_default=True, help="Size of the demo file.")
@click.option("--part-size", type=SIZE, help="Part size (default: auto).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), help="Parallel uploads.")
@click.option("--progress", type=click.Choice(["auto", "rich", "plain", "tqdm", "none"]), default="auto", show_default=True)
@json_option
@click.pass_obj
def demo(app: AppContext, size: int, part_size: int | None, jobs: int | None, progress: str) -> None:
    """Run mint, put, complete and verify against a local S3 (moto) and relay.

    Starts an S3 server and a relay on free 127.0.0.1 ports, creates a file, mints a
    manifest, uploads it with no credentials, completes through the relay, downloads the
    object and compares checksums. Nothing leaves this machine.

    \b
    Examples:
      s3mpu demo
      s3mpu demo --size 1G --part-size 64M -j 8
      s3mpu demo --json
    """
    from s3mpu.demo import run_demo
    from s3mpu.cli.progress_rich import make_progress
    from s3mpu.units import plural

    sink = make_progress(app.out, progress, label="bigfile.bin")
    result = run_demo(size=size, part_size=part_size, jobs=jobs, progress=sink, say=app.out.info)
    if not result.verified:
        raise DataError(f"demo object {result.uri} does not match the file", "Please report this as a bug.")
    app.out.result(asdict(result), f"[green]demo OK[/]: {result.uri} {result.size} bytes in {plural(result.parts, 'part')}, "
                                   f"{result.seconds:.2f} s ({result.mib_per_s} MiB/s), etag {result.etag}, "
                                   f"SHA-256 verified")
