"""``s3mpu plan DIR``: the Click side of directory plans (the core is :mod:`s3mpu.plan_dir`).

``plan`` itself lives in :mod:`s3mpu.cli.cmd_mint` (``plan FILE``); when its argument is a
folder it calls :func:`plan_directory` here.
"""
from __future__ import annotations

import time
from typing import Any

import click

from s3mpu.cli import AppContext

_META = "s3mpu.filters"


class FilterOption(click.Option):
    """``--exclude``/``--include`` that also record every occurrence, in command-line order.

    aws-cli applies its filters in the order given, the last match winning; Click collects each
    option's values separately, so the interleaving (``--exclude '*' --include '*.txt'``) would
    be lost. Each occurrence is appended to ``ctx.meta`` as ``(kind, glob)`` when parsed.
    """

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        kind = self.name or ""
        for opt in self.opts:
            parsed = parser._long_opt.get(opt) or parser._short_opt.get(opt)
            if parsed is None:  # pragma: no cover - click internals changed: fall back to option order
                continue
            process = parsed.process

            def recording(value: Any, state: Any, process: Any = process) -> None:
                ctx.meta.setdefault(_META, []).append((kind, value))
                process(value, state)

            parsed.process = recording


def filters_in_order(ctx: click.Context, exclude: tuple[str, ...], include: tuple[str, ...]) -> list[tuple[str, str]]:
    recorded = ctx.meta.get(_META)
    if recorded is not None:
        return list(recorded)
    return [("exclude", g) for g in exclude] + [("include", g) for g in include]


def plan_directory(app: AppContext, folder: str, part_size: int | None, output: str, *, sizes_only: bool,
                   filters: list[tuple[str, str]], follow_symlinks: bool, jobs: int | None) -> None:
    from s3mpu.plan_dir import dump_dir_plan, plan_dir
    from s3mpu.units import format_size, plural

    skipped: list[str] = []

    def notice(text: str) -> None:
        skipped.append(text)
        app.out.info(text)

    with _progress(app, folder) as progress:
        p = plan_dir(folder, part_size=part_size, sizes_only=sizes_only, filters=filters,
                     follow_symlinks=follow_symlinks, jobs=jobs, progress=progress, notice=notice)
    dump_dir_plan(p, output)
    what = "sizes of " if sizes_only else ""
    human = (f"planned {what}{plural(len(p.files), 'file')} in {folder} ({format_size(p.total_size)})"
             + (f", {plural(len(skipped), 'entry', 'entries')} skipped" if skipped else ""))
    data = {"folder": folder, "files": len(p.files), "size": p.total_size, "sizes_only": sizes_only,
            "skipped": len(skipped), "plan": output}
    if output == "-":
        if not app.out.json_mode:
            app.out.info(human)
    else:
        app.out.result(data, human + f", plan in {output}")


class _progress:
    """A rich bar (bytes and files) on a TTY; a plain line every few seconds otherwise; nothing with -q/--json."""

    def __init__(self, app: AppContext, folder: str) -> None:
        self.app, self.folder = app, folder
        self.bar: Any = None
        self.task: Any = None
        self.last = time.monotonic()

    def __enter__(self) -> Any:
        out = self.app.out
        if out.quiet or out.json_mode:
            return None
        if not out.is_tty:
            return self.plain
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        from s3mpu.cli.progress_rich import binary_speed_column

        self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                            DownloadColumn(binary_units=True), binary_speed_column(), TimeRemainingColumn(),
                            "[progress.description]{task.fields[files]}", console=out.console, transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task(f"hashing {self.folder}", total=None, files="")
        return self.rich

    def rich(self, done: int, total: int, files: int, total_files: int) -> None:
        self.bar.update(self.task, completed=done, total=total, files=f"{files}/{total_files} files")

    def plain(self, done: int, total: int, files: int, total_files: int) -> None:
        now = time.monotonic()
        if now - self.last < 5 and files < total_files:
            return
        self.last = now
        pct = 100 * done // total if total else 100
        self.app.out.info(f"hashing {self.folder}: {pct}% ({done}/{total} bytes, {files}/{total_files} files)")

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
