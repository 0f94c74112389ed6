"""Click parameter types for s3mpu's units, so parse errors are usage errors (exit 64)."""
from __future__ import annotations

from typing import Any

import click

from s3mpu.errors import S3mpuError


class _Parsed(click.ParamType):
    def __init__(self, name: str, func: Any) -> None:
        self.name = name
        self.func = func

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.func(value)
        except S3mpuError as exc:
            self.fail(sentence(exc.message, exc.hint), param, ctx)


def sentence(message: str, hint: str = "") -> str:
    """``message. Hint.`` on one line: a usage error is read as one sentence after Click's prefix."""
    if not hint:
        return message
    return f"{message}{'' if message.endswith(('.', '!', '?', ':')) else '.'} {hint}"


def _size(v: str) -> int:
    from s3mpu.units import parse_size

    return parse_size(v)


def _duration(v: str) -> int:
    from s3mpu.units import parse_duration

    return parse_duration(v)


def _expires(v: str) -> Any:
    from s3mpu.units import parse_expires

    return parse_expires(v)


def _uri(v: str) -> Any:
    from s3mpu.s3uri import S3Uri

    return S3Uri.parse(v)


def _uri_key(v: str) -> Any:
    from s3mpu.s3uri import S3Uri

    return S3Uri.parse(v, need_key=True)


SIZE = _Parsed("size", _size)
DURATION = _Parsed("duration", _duration)
EXPIRES = _Parsed("expires", _expires)
S3URI = _Parsed("s3://bucket[/prefix]", _uri)
S3OBJECT = _Parsed("s3://bucket/key", _uri_key)


# -- shell completion of paths ------------------------------------------------------------------
def complete_file(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Any path: the shell completes it (config files, data files)."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


def complete_json(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Manifests and plans: matching ``*.json`` files first, then any path.

    zsh and fish show the JSON candidates as their own list before the shell's own path
    completion. bash cannot mix them (Click's bash script drops other candidates when asked to
    complete a path), so bash gets path completion alone rather than JSON files only, which
    would hide directories and manifests with other names.
    """
    import os

    from click.shell_completion import CompletionItem

    items = [CompletionItem(incomplete, type="file")]
    if os.environ.get("_S3MPU_COMPLETE", "").startswith("bash"):
        return items
    return [CompletionItem(p, type="plain") for p in json_files(incomplete)] + items


def json_files(incomplete: str, limit: int = 200) -> list[str]:
    """``*.json`` files whose path starts with ``incomplete`` (no hidden ones unless asked), sorted."""
    import os

    directory, _, prefix = incomplete.rpartition("/")
    base = os.path.expanduser(directory) if directory else "."
    if directory == "" and incomplete.startswith("/"):
        base = "/"
    try:
        names = sorted(os.listdir(base or "/"))
    except OSError:
        return []
    out = []
    for name in names:
        if not name.startswith(prefix) or not name.lower().endswith(".json"):
            continue
        if name.startswith(".") and not prefix.startswith("."):
            continue
        path = f"{directory}/{name}" if directory or incomplete.startswith("/") else name
        if os.path.isfile(os.path.join(base or "/", name)):
            out.append(path)
        if len(out) >= limit:
            break
    return out
