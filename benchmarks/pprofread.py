"""Read a Go CPU profile (rclone ``--cpuprofile``) without the Go toolchain.

Why: the benchmark's server is a Go binary, and the question "where does the server's CPU
go for each client" is answered by its own profiler; ``go tool pprof`` is not on this machine
and no PyPI package reads the format, which is a gzipped protobuf (``profile.proto``) small
enough to walk by hand: samples point at locations, locations at functions, functions at the
string table.
"""
from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def _varint(b: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return value, i


def _fields(b: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        wire = key & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i:i + n], i + n
        elif wire == 1:
            value, i = b[i:i + 8], i + 8
        elif wire == 5:
            value, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, wire, value


def _ints(value: int | bytes) -> list[int]:
    """A repeated integer field: one varint, or a packed run of them."""
    if isinstance(value, int):
        return [value]
    out, i = [], 0
    while i < len(value):
        v, i = _varint(value, i)
        out.append(v)
    return out


@dataclass
class Sample:
    stack: list[str]  # function names, innermost first
    cpu_ns: int


def read_profile(path: Path) -> list[Sample]:
    """The CPU samples of a pprof file, each with its symbolized stack."""
    data = gzip.decompress(path.read_bytes())
    raw: list[tuple[list[int], list[int]]] = []
    locations: dict[int, list[int]] = {}
    functions: dict[int, int] = {}
    strings: list[str] = []
    sample_types: list[int] = []
    for field, _, value in _fields(data):
        if field == 1 and isinstance(value, bytes):  # sample_type: ValueType{type, unit}
            sample_types.append(next(v for f, _, v in _fields(value) if f == 1))  # type: ignore[arg-type]
        elif field == 2 and isinstance(value, bytes):  # sample{location_id*, value*}
            ids: list[int] = []
            vals: list[int] = []
            for f, _, v in _fields(value):
                if f == 1:
                    ids += _ints(v)
                elif f == 2:
                    vals += _ints(v)
            raw.append((ids, vals))
        elif field == 4 and isinstance(value, bytes):  # location{id, line{function_id}*}
            loc_id, funcs = 0, []
            for f, _, v in _fields(value):
                if f == 1:
                    loc_id = int(v)  # type: ignore[arg-type]
                elif f == 4 and isinstance(v, bytes):
                    funcs += [int(x) for ff, _, x in _fields(v) if ff == 1]  # type: ignore[arg-type]
            locations[loc_id] = funcs
        elif field == 5 and isinstance(value, bytes):  # function{id, name}
            fid = name = 0
            for f, _, v in _fields(value):
                if f == 1:
                    fid = int(v)  # type: ignore[arg-type]
                elif f == 2:
                    name = int(v)  # type: ignore[arg-type]
            functions[fid] = name
        elif field == 6 and isinstance(value, bytes):
            strings.append(value.decode("utf-8", "replace"))
    # Go writes [samples/count, cpu/nanoseconds]; pick the nanoseconds column by name.
    names = [strings[t] for t in sample_types]
    col = names.index("cpu") if "cpu" in names else len(names) - 1
    return [Sample([strings[functions[fid]] for lid in ids for fid in locations.get(lid, [])], vals[col])
            for ids, vals in raw]
