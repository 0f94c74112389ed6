"""The entry point of a packed recipient side (``s3mpu pack``): the user's commands only.

Why a separate entry: the pack carries no boto3 or Flask, so the admin's commands (``mint``,
``relay``, ...) cannot run from it; asked for one, it says where that command lives instead of
failing on an import. Everything else is the same CLI as the full install.
"""
from __future__ import annotations

import sys
from typing import Any

#: the commands a pack answers; every other command of the full install belongs to it
USER_COMMANDS = frozenset({"put", "plan", "status", "info", "verify", "request", "complete", "abort"})


def pack_info() -> dict[str, Any]:
    """What ``s3mpu pack`` recorded in the archive this runs from; empty outside a pack."""
    import s3mpu
    from s3mpu.pack import read_info

    archive = getattr(getattr(s3mpu, "__loader__", None), "archive", None)  # zipimport's loader knows its file
    return (read_info(archive) if archive else None) or {}


def version_text() -> str:
    from s3mpu import __version__

    info = pack_info()
    built = info.get("built_at", "?")
    dists = ", ".join(f"{k} {v}" for k, v in sorted(info.get("distributions", {}).items()))
    return (f"s3mpu, version {__version__} (recipient side, packed {built} from s3mpu {info.get('s3mpu', __version__)}; "
            f"Python {sys.version.split()[0]}; with {dists or 'nothing else'})")


def main() -> None:
    """``python3 s3mpu.pyz COMMAND ...``: the full CLI limited to :data:`USER_COMMANDS`."""
    if sys.argv[1:] == ["--version"]:
        print(version_text())
        sys.exit(0)
    from s3mpu.cli import S3mpuGroup, main as cli_main

    S3mpuGroup.only = USER_COMMANDS
    cli_main()
