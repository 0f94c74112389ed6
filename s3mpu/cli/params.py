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
