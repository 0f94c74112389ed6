"""Regenerate (or check) the shell completion scripts in ``completions/``.

The scripts are exactly what ``_S3MPU_COMPLETE={bash,zsh,fish}_source s3mpu`` prints: small
shims that ask s3mpu itself for candidates, so they always know the current commands and
options. They are committed so packagers and users can install them without running s3mpu;
``tests/test_completions.py`` fails when they are stale (e.g. after a Click upgrade).

    python -m s3mpu.cli.shellcomp            # rewrite completions/*
    python -m s3mpu.cli.shellcomp --check    # exit 1 when any is stale
"""
from __future__ import annotations

import sys
from pathlib import Path

SHELLS = {"bash": "s3mpu.bash", "zsh": "s3mpu.zsh", "fish": "s3mpu.fish"}
COMPLETE_VAR = "_S3MPU_COMPLETE"


def source(shell: str) -> str:
    """The completion script for ``shell``, as ``_S3MPU_COMPLETE=<shell>_source s3mpu`` prints it."""
    from click.shell_completion import get_completion_class

    from s3mpu.cli import cli

    cls = get_completion_class(shell)
    if cls is None:
        raise ValueError(f"unsupported shell: {shell}")
    return cls(cli, {}, "s3mpu", COMPLETE_VAR).source()


def default_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "completions"


def stale(directory: Path) -> list[str]:
    """Names of the scripts in ``directory`` that are missing or differ from a fresh generation."""
    out = []
    for shell, name in SHELLS.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != source(shell):
            out.append(name)
    return out


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for shell, name in SHELLS.items():
        path = directory / name
        path.write_text(source(shell), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    rest = [a for a in args if a != "--check"]
    directory = Path(rest[0]) if rest else default_dir()
    if check:
        bad = stale(directory)
        for name in bad:
            print(f"stale: {directory / name} (run: python -m s3mpu.cli.shellcomp)", file=sys.stderr)
        return 1 if bad else 0
    for path in write_all(directory):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
