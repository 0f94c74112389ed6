"""The ``s3mpu`` command line: a thin Click layer over the library.

Each command parses its arguments and calls one typed library function. Errors are
:class:`s3mpu.errors.S3mpuError` subclasses; :meth:`S3mpuGroup.main` is the single place
that prints them and turns them into an exit status (Click's own usage errors become 64,
as in s3cmd, instead of Click's 2). Command modules are imported lazily, so
``s3mpu --help`` does not pay for boto3, rich or flask.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from s3mpu import __version__
from s3mpu.errors import EXIT_GENERAL, EXIT_INTERRUPTED, EXIT_USAGE, S3mpuError, exit_code_for
from s3mpu.cli.output import Output
from s3mpu.cli.params import complete_file

#: command name -> "module:attribute"; one module per group of related commands.
COMMANDS: dict[str, str] = {
    "mint": "s3mpu.cli.cmd_mint:mint",
    "plan": "s3mpu.cli.cmd_mint:plan",
    "put": "s3mpu.cli.cmd_user:put",
    "complete": "s3mpu.cli.cmd_user:complete",
    "status": "s3mpu.cli.cmd_user:status",
    "abort": "s3mpu.cli.cmd_user:abort",
    "verify": "s3mpu.cli.cmd_user:verify",
    "info": "s3mpu.cli.cmd_info:info",
    "request": "s3mpu.cli.cmd_relay:request",
    "relay": "s3mpu.cli.cmd_relay:relay",
    "listmp": "s3mpu.cli.cmd_admin:listmp",
    "abortmp": "s3mpu.cli.cmd_admin:abortmp",
    "cleanup": "s3mpu.cli.cmd_admin:cleanup",
    "configure": "s3mpu.cli.cmd_admin:configure",
    "demo": "s3mpu.cli.cmd_demo:demo",
    "pack": "s3mpu.cli.cmd_pack:pack",
}


@dataclass
class AppContext:
    """Per-invocation state handed to commands (no globals): flags, output, lazily-built settings."""

    flags: dict[str, Any]
    config_file: str | None
    out: Output
    argv: list[str] = field(default_factory=list)  # the arguments as given, for "re-run: ..." hints
    _settings: Any = field(default=None, repr=False)

    @property
    def settings(self) -> Any:
        if self._settings is None:
            from s3mpu.config import load_settings

            self._settings = load_settings(self.config_file, self.flags)
        return self._settings

    def s3_client(self) -> Any:
        from s3mpu.config import s3_client

        return s3_client(self.settings)


class S3mpuGroup(click.Group):
    """Lazy command loading plus the one exception-to-exit-code mapping."""

    verbose = 0
    argv: list[str] = []
    #: the commands this program offers (a pack: the recipient side's); None: all of them
    only: frozenset[str] | None = None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS
                      if (self.only is None or name in self.only) and self.get_command(ctx, name) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        if self.only is not None and name not in self.only:
            return full_install_only(name)
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            return None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        """Click suggests the closest command from ``self.commands``, empty here (commands load lazily)."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            raise click.exceptions.NoSuchCommand(exc.command_name, possibilities=list(COMMANDS), ctx=ctx) from None

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        code = self._run(args, prog_name or "s3mpu", complete_var, **extra)
        sys.exit(code)

    def _run(self, args: Any, prog_name: str, complete_var: str | None, **extra: Any) -> int:
        self.argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
            return EXIT_USAGE
        except click.UsageError as exc:
            exc.show()
            return EXIT_USAGE
        except click.exceptions.Abort:
            click.echo("\ninterrupted", err=True)
            return EXIT_INTERRUPTED
        except click.ClickException as exc:
            exc.show()
            return EXIT_USAGE if exc.exit_code == 2 else exc.exit_code
        except S3mpuError as exc:
            click.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                click.echo(exc.hint, err=True)
            return exc.exit_code
        except KeyboardInterrupt:
            click.echo("\ninterrupted; re-run the same command to resume", err=True)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            return EXIT_GENERAL
        except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
            if self.verbose:
                import traceback  # only here: 4 ms of every start-up otherwise

                traceback.print_exc()
            click.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
            click.echo("Re-run with -v for details, and report it if it persists.", err=True)
            return exit_code_for(exc)
        return rv if isinstance(rv, int) else 0


def full_install_only(name: str) -> click.Command:
    """A packed recipient side asked for an admin command: say where it lives (64), import nothing."""

    def refuse(args: tuple[str, ...]) -> None:
        here = ", ".join(n for n in COMMANDS if n in (S3mpuGroup.only or ()))
        raise click.UsageError(f"'{name}' belongs to the full install of s3mpu (pip install s3mpu, where the "
                               f"credentials are); this file is the recipient side: {here}")

    return click.Command(name, callback=refuse, add_help_option=False, hidden=True,
                         params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=S3mpuGroup, context_settings=CONTEXT_SETTINGS)
@click.option("-c", "--config", "config_file", metavar="FILE", shell_complete=complete_file,
              help="s3cmd-format config file (default: $S3MPU_CONFIG or $S3CMD_CONFIG, else ~/.s3cfg when present).")
@click.option("--endpoint-url", "--host", "endpoint_url", metavar="URL", help="S3 endpoint, e.g. http://127.0.0.1:9000 (s3cmd: --host).")
@click.option("--host-bucket", metavar="TEMPLATE", help="Virtual-host template, e.g. '%(bucket)s.s3.example.com'.")
@click.option("--region", metavar="REGION", help="Region to sign for (default us-east-1).")
@click.option("--profile", metavar="NAME", help="AWS shared-credentials profile.")
@click.option("--access-key", metavar="KEY", help="S3 access key (prefer AWS_ACCESS_KEY_ID or the config file).")
@click.option("--secret-key", metavar="SECRET", help="S3 secret key (prefer AWS_SECRET_ACCESS_KEY or the config file).")
@click.option("--signature-v2", is_flag=True, default=None,
              help="Presign with SigV2, for old Ceph RGW and other stores without SigV4 (SigV2 cannot bind a part's length).")
@click.option("--addressing", type=click.Choice(["auto", "path", "virtual"]), help="Bucket addressing style.")
@click.option("-v", "--verbose", count=True, help="More detail; tracebacks for unexpected errors.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.version_option(__version__, "--version", prog_name="s3mpu")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, endpoint_url: str | None, host_bucket: str | None,
        region: str | None, profile: str | None, access_key: str | None, secret_key: str | None,
        signature_v2: bool | None, addressing: str | None, verbose: int, quiet: bool) -> None:
    """Hand out the right to upload one large file to S3, without handing out any key.

    \b
    An admin mints a manifest of presigned part URLs; a user with no credentials
    uploads through it; a small relay completes the upload after checking every part.

    \b
    Examples:
      s3mpu demo                                    # the whole flow on a local S3
      s3mpu mint s3://media/raw.mov --size 10G --relay https://relay.example -o m.json
      s3mpu put m.json raw.mov                      # the user side, no credentials
      s3mpu COMMAND --help                          # help and examples for each command
    """
    S3mpuGroup.verbose = verbose
    flags: dict[str, Any] = {"endpoint_url": endpoint_url, "region": region, "profile": profile,
                             "access_key": access_key, "secret_key": secret_key, "addressing": addressing,
                             "host_bucket": host_bucket}
    if host_bucket and not addressing:
        flags["addressing"] = "virtual" if "%(bucket)s" in host_bucket else "path"
    if signature_v2:
        flags["signature_version"] = "s3"
    ctx.obj = AppContext(flags=flags, config_file=config_file, out=Output(quiet=quiet, verbose=verbose),
                         argv=list(getattr(ctx.command, "argv", [])))


def json_option(f: Any) -> Any:
    """``--json``: one JSON document on stdout instead of human text."""

    def cb(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value and isinstance(ctx.obj, AppContext):
            ctx.obj.out.json_mode = True
        return value

    return click.option("--json", "json_out", is_flag=True, expose_value=False, callback=cb,
                        help="Print one JSON document on stdout (for scripts).")(f)


def main() -> None:
    """Console-script entry point.

    The cyclic collector's first generation runs every 10,000 allocations instead of 700: start-up
    (click, urllib3, the manifest) allocates a few hundred thousand objects that live for the whole
    run, and collecting them every 700 cost about 10 ms of each command's ~0.15 s start (medians of
    40 runs). Only the console script does this; a program importing the library keeps its own.

    On the way out everything still alive is frozen (``gc.freeze``), so the interpreter's last
    collection at exit does not walk botocore's models and a manifest's 10,000 parts only to find
    nothing to free: 55 ms of a 10,000-part ``mint`` (medians of 9). Objects are still released
    as usual when the modules are torn down.
    """
    import gc

    from s3mpu.compat import install_break_handler

    install_break_handler()  # Windows' Ctrl-Break stops like Ctrl-C (resumable), instead of killing the process
    gc.set_threshold(10_000, 10, 10)
    try:
        cli.main(prog_name="s3mpu")
    finally:
        gc.freeze()
