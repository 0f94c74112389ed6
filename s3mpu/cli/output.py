"""Terminal output: rich on a TTY, plain text without one, nothing but errors with ``-q``.

Data for scripts (``--json``) goes to stdout; everything for humans goes to stderr, so
``s3mpu mint ... -o - > manifest.json`` and pipes stay clean.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO


class Output:
    """One object per invocation; commands never print directly."""

    def __init__(self, quiet: bool = False, verbose: int = 0, json_mode: bool = False,
                 stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._console: Any = None

    @property
    def is_tty(self) -> bool:
        try:
            return self.stderr.isatty() and os.environ.get("TERM") != "dumb"
        except (AttributeError, ValueError):
            return False

    @property
    def console(self) -> Any:
        """A rich console on stderr (imported on first use: ``--help`` never pays for rich)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stderr, no_color=bool(os.environ.get("NO_COLOR")) or None,
                                    force_terminal=None if self.is_tty else False, highlight=False,
                                    soft_wrap=not self.is_tty)
        return self._console

    def info(self, text: str) -> None:
        """Human progress/status text (stderr); silent with -q or --json."""
        if self.quiet or self.json_mode:
            return
        if self.is_tty:
            self.console.print(text)
        else:
            print(_strip_markup(text), file=self.stderr, flush=True)

    def debug(self, text: str) -> None:
        if self.verbose:
            print(_strip_markup(text), file=self.stderr, flush=True)

    def warn(self, text: str) -> None:
        if self.quiet:
            return
        if self.is_tty:
            self.console.print(f"[yellow]warning:[/] {text}")
        else:
            print(f"warning: {_strip_markup(text)}", file=self.stderr, flush=True)

    def error(self, text: str) -> None:
        """Errors always print, even with -q (plain text: they are read in cron mail)."""
        print(f"error: {text}", file=self.stderr, flush=True)

    def result(self, data: Any, human: str | None = None) -> None:
        """The command's result: JSON on stdout with --json, else the human text on stdout."""
        if self.json_mode:
            json.dump(data, self.stdout, indent=2, default=str)
            self.stdout.write("\n")
            self.stdout.flush()
        elif human is not None and not self.quiet:
            if self.is_tty and self.stdout.isatty():
                from rich.console import Console

                Console(file=self.stdout, highlight=False).print(human)
            else:
                print(_strip_markup(human), file=self.stdout, flush=True)

    def event(self, data: dict[str, Any]) -> None:
        """One JSON line on stdout (for --json event streams)."""
        self.stdout.write(json.dumps(data, default=str) + "\n")
        self.stdout.flush()


def _strip_markup(text: str) -> str:
    if "[" not in text:
        return text
    from rich.text import Text

    return Text.from_markup(text).plain
