"""Bundle v1: one handoff for a whole folder (SPEC §8).

A bundle grants the upload of a fixed set of files under one key prefix. Each file is an
*object*: ``PREFIX + path`` (``path`` relative to the folder, ``/``-separated). An object of at
most one part is a single presigned PUT (its length signed, and its Content-MD5 when a plan
hashed it: S3 makes the object appear atomically, so it needs no complete). A larger one embeds
a whole manifest v1 (its own upload id, part URLs and relay token), so its upload runs through
exactly the single-file pipeline.

Why the paths are checked here, on load, and not only where files are opened: a bundle comes
from someone else. An absolute path, a ``..`` segment, a backslash (a separator on Windows), a
NUL or an unpaired surrogate (a name that was not UTF-8 on disk) would let a hostile bundle
name a file outside the folder, or a key the admin never meant; such a bundle is refused whole
(exit 65) before anything is read or sent. Symlinks and special files are judged when a file
is opened (:mod:`s3mpu.user.bundle_files`), since only the disk knows them.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, BinaryIO

from s3mpu.errors import ManifestError
from s3mpu.manifest import Manifest, check_schema, parse_json, read_document, redact_url, write_private
from s3mpu.units import parse_iso

FORMAT = "s3mpu.bundle/1"
#: S3's limit on a key, in UTF-8 bytes
MAX_KEY_BYTES = 1024
#: S3's limit on one PUT: a single-PUT object may not be larger
MAX_SINGLE_PUT = 5 * 1024 ** 3
#: objects in one bundle: a bound on what one handoff can grant (and on the memory to load it)
MAX_OBJECTS = 1_000_000
_DRIVE = re.compile(r"^[A-Za-z]:")


class BundleError(ManifestError):
    """A malformed or hostile bundle (exit 65); ``field`` names the offending JSON path."""

    def __init__(self, message: str, field: str = "", hint: str = "") -> None:
        super().__init__(message, field, hint or "Ask the admin for a fresh copy of the bundle (s3mpu mint --plan).")


#: a path that is certainly fine: '/'-separated segments, none empty, '.' or '..', no backslash or NUL,
#: not absolute, no drive letter, ASCII (so valid UTF-8). Anything else gets the full check below.
_CLEAN = re.compile(r"(?!\.\.?(?:/|\Z))[^/\\\x00:]+(?:/(?!\.\.?(?:/|\Z))[^/\\\x00]+)*\Z", re.ASCII)


def path_problem(path: Any) -> str | None:
    """Why ``path`` cannot name a file inside the folder (None: it can). Shared by plan, mint, relay and put."""
    if type(path) is str and path.isascii() and _CLEAN.match(path):
        return None
    return full_path_problem(path)


def full_path_problem(path: Any) -> str | None:
    """:func:`path_problem` without its fast path (tests prove the fast path never passes a bad path)."""
    if not isinstance(path, str) or not path:
        return "is empty or not a string"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if "\x00" in path:
        return "holds a NUL character"
    if "\\" in path:
        return "holds a backslash (paths use '/')"
    if path.startswith("/") or _DRIVE.match(path):
        return "is absolute"
    for seg in path.split("/"):
        if seg in ("", ".", ".."):
            return f"has a {seg!r} segment" if seg else "has an empty segment"
    return None


def key_for(prefix: str, path: str) -> str:
    """The object key of ``path`` under ``prefix`` (which ends in ``/`` or is empty)."""
    return prefix + path


def key_problem(key: str) -> str | None:
    if len(key) <= MAX_KEY_BYTES // 4:  # at most 4 bytes a character in UTF-8
        return None
    n = len(key.encode("utf-8", "surrogatepass"))
    return f"is {n} bytes, over S3's {MAX_KEY_BYTES}-byte limit" if n > MAX_KEY_BYTES else None


_NO_HEADERS: dict[str, str] = {}  # shared by every object that signs no extra header (never written to)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 us a field, 100,000 objects a load
class BundleObject:
    """One file of the bundle: a single PUT (``url``) or a multipart upload (``manifest``)."""

    path: str
    key: str
    size: int
    content_type: str | None = None
    url: str | None = None  # single PUT
    md5: str | None = None  # single PUT: hex MD5 the URL signs as Content-MD5 (from a plan)
    #: headers the single PUT must carry because the URL signed them (Content-Type, x-amz-acl, ...)
    headers: dict[str, str] = field(default_factory=dict)
    manifest: Manifest | None = None  # multipart

    @property
    def multipart(self) -> bool:
        return self.manifest is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "key": self.key, "size": self.size,
                               "content_type": self.content_type}
        if self.manifest is not None:
            out["manifest"] = self.manifest.to_dict()
        else:
            out.update(url=self.url, md5=self.md5, headers=dict(self.headers))
        return out


@dataclass(frozen=True)
class Bundle:
    """Everything a user without credentials needs to upload one folder."""

    id: str  # random, minted: names the journal and the lock of this bundle's runs
    endpoint: str
    region: str
    bucket: str
    prefix: str
    created_at: str
    expires_at: str
    objects: tuple[BundleObject, ...]
    relay_url: str | None = None
    signature_version: str = "s3v4"
    format: str = FORMAT

    @property
    def expires(self) -> datetime:
        return parse_iso(self.expires_at)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def total_size(self) -> int:
        return sum(o.size for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "id": self.id, "endpoint": self.endpoint, "region": self.region,
                "bucket": self.bucket, "prefix": self.prefix, "created_at": self.created_at,
                "expires_at": self.expires_at, "signature_version": self.signature_version,
                "relay": {"url": self.relay_url} if self.relay_url else None,
                "objects": [o.to_dict() for o in self.objects]}

    def to_json(self) -> str:
        """One field a line and one object a line: each line goes through json's C encoder (100,000 objects)."""
        d = self.to_dict()
        objects = d.pop("objects")
        head = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items())
        body = ",\n  ".join(json.dumps(o) for o in objects)
        return "{\n" + head + ',\n "objects": [\n  ' + body + "\n ]\n}\n"

    def redacted(self) -> dict[str, Any]:
        """The bundle with every URL signature and relay token masked (for ``info --json``)."""
        d = self.to_dict()
        for o, obj in zip(d["objects"], self.objects, strict=True):
            if obj.manifest is not None:
                o["manifest"] = obj.manifest.redacted()
            elif o.get("url"):
                o["url"] = redact_url(o["url"])
        return d

    @classmethod
    def from_dict(cls, data: Any, *, consume: bool = False) -> Bundle:
        """``consume``: ``data`` is a parse of our own and may be emptied as objects are built."""
        validate(data)
        items = data["objects"]
        built = []
        for i, o in enumerate(items):
            built.append(_object(i, o, data))
            if consume:  # the parsed dict is dropped once its object exists: a 100,000-file bundle
                items[i] = None  # never holds both in full (~70 MiB less at the peak)
        objects = tuple(built)
        relay = data.get("relay") or {}
        b = cls(id=data["id"], endpoint=data["endpoint"], region=data["region"], bucket=data["bucket"],
                prefix=data["prefix"], created_at=data["created_at"], expires_at=data["expires_at"],
                objects=objects, relay_url=relay.get("url"), signature_version=data.get("signature_version", "s3v4"))
        _check(b)
        return b


def _object(i: int, o: dict[str, Any], data: dict[str, Any]) -> BundleObject:
    m = None
    if o.get("manifest") is not None:
        try:
            m = Manifest.from_dict(o["manifest"])
        except ManifestError as exc:
            where = f"objects[{i}].manifest" + (f".{exc.field}" if exc.field else "")
            raise BundleError(f"bundle field {where}: {exc.message.removeprefix('manifest field ')}", where) from None
    return BundleObject(path=o["path"], key=o["key"], size=o["size"], content_type=o.get("content_type"),
                        url=o.get("url"), md5=o.get("md5"), headers=o.get("headers") or _NO_HEADERS, manifest=m)


def _check(b: Bundle) -> None:
    """Cross-field checks a schema cannot express; every object is judged before anything is sent."""
    for name in ("created_at", "expires_at"):
        try:
            parse_iso(getattr(b, name))
        except ValueError:
            raise BundleError(f"bundle field {name}: {getattr(b, name)!r} is not an ISO-8601 time", name) from None
    if b.prefix and not b.prefix.endswith("/"):
        raise BundleError(f"bundle field prefix: {b.prefix!r} does not end in '/'", "prefix")
    seen: set[str] = set()
    for i, o in enumerate(b.objects):
        where = f"objects[{i}]"
        why = path_problem(o.path)
        if why:
            raise BundleError(f"bundle field {where}.path: {_short(o.path)} {why}", f"{where}.path",
                              "This bundle names a file outside its folder: do not use it; ask the admin.")
        if o.path in seen:
            raise BundleError(f"bundle field {where}.path: {_short(o.path)} is named twice", f"{where}.path")
        seen.add(o.path)
        if o.key != key_for(b.prefix, o.path):
            raise BundleError(f"bundle field {where}.key: {_short(o.key)} is not the prefix {b.prefix!r} followed by "
                              f"the path {_short(o.path)}", f"{where}.key")
        why = key_problem(o.key)
        if why:
            raise BundleError(f"bundle field {where}.key: {_short(o.key)} {why}", f"{where}.key")
        m = o.manifest
        if (o.url is None) == (m is None):
            raise BundleError(f"bundle field {where}: needs exactly one of 'url' (a single PUT) and 'manifest' "
                              "(a multipart upload)", where)
        if m is None:
            if o.size > MAX_SINGLE_PUT:
                raise BundleError(f"bundle field {where}.size: {o.size} bytes is over S3's 5 GiB single-PUT limit",
                                  f"{where}.size")
            continue
        if (m.bucket, m.key, m.size, m.size_is_max) != (b.bucket, o.key, o.size, False):
            raise BundleError(f"bundle field {where}.manifest: it uploads s3://{m.bucket}/{_short(m.key)} "
                              f"({'at most ' if m.size_is_max else ''}{m.size} bytes), not the object's "
                              f"s3://{b.bucket}/{_short(o.key)} ({o.size} bytes)", f"{where}.manifest")


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


@cache
def schema() -> dict[str, Any]:
    """The bundle JSON Schema shipped in the package."""
    return json.loads(resources.files("s3mpu.schema").joinpath("bundle-v1.json").read_text("utf-8"))


@cache
def _compiled() -> Callable[[Any], Any]:
    """The shipped schema without its per-object rules, which :func:`object_problem` checks ~5x faster.

    Why: a bundle may hold 100,000 objects and must load within a second; the generated validator
    spends ~7 us an object. ``tests/test_bundle.py`` proves the hand check agrees with the schema.
    """
    import copy

    import fastjsonschema

    top = copy.deepcopy(schema())
    top["properties"]["objects"]["items"] = {"type": "object"}
    return fastjsonschema.compile(top, use_formats=False)


_OBJECT_FIELDS = frozenset(("path", "key", "size", "content_type", "url", "md5", "headers", "manifest"))
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def object_ok(o: dict[str, Any]) -> bool:
    """The common case of :func:`object_problem` (a well-formed object), in as few operations as possible."""
    if not o.keys() <= _OBJECT_FIELDS:
        return False
    path, key, size = o.get("path"), o.get("key"), o.get("size")
    if type(path) is not str or type(key) is not str or type(size) is not int or size < 0 \
            or not 0 < len(path) <= 4096 or not 0 < len(key) <= 4096:
        return False
    ct, md5, url, headers = o.get("content_type"), o.get("md5"), o.get("url", 0), o.get("headers")
    return ((ct is None or (type(ct) is str and len(ct) <= 1024))
            and (md5 is None or (type(md5) is str and _HEX32.match(md5) is not None))
            and (url == 0 or (type(url) is str and url != ""))
            and (headers is None or (type(headers) is dict and len(headers) <= 64 and all(
                type(v) is str and len(v) <= 8192 for v in headers.values())))
            and ("manifest" not in o or type(o["manifest"]) is dict))


def object_problem(o: dict[str, Any]) -> tuple[str, str] | None:
    """``(field, what is wrong)`` for one object of ``objects`` per the schema's ``items``, else None."""
    for name in ("path", "key", "size"):
        if name not in o:
            return "", f"{name!r} is missing"
    extra = set(o) - _OBJECT_FIELDS
    if extra:
        return "", "unexpected field" + ("s " if len(extra) > 1 else " ") + ", ".join(map(repr, sorted(extra)))
    for name in ("path", "key"):
        v = o[name]
        if not isinstance(v, str) or not 1 <= len(v) <= 4096:
            return name, f"{_short(v)} is not a string of 1 to 4096 characters"
    size = o["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "size", f"{_short(size)} is not a byte count"
    ct = o.get("content_type")
    if ct is not None and (not isinstance(ct, str) or len(ct) > 1024):
        return "content_type", f"{_short(ct)} is not a content type"
    if "url" in o and (not isinstance(o["url"], str) or not o["url"]):
        return "url", f"{_short(o['url'])} is not a URL"
    md5 = o.get("md5")
    if md5 is not None and (not isinstance(md5, str) or not _HEX32.match(md5)):
        return "md5", f"{_short(md5)} is malformed"
    headers = o.get("headers")
    if headers is not None and (not isinstance(headers, dict) or len(headers) > 64 or not all(
            isinstance(v, str) and len(v) <= 8192 for v in headers.values())):
        return "headers", "is not an object of at most 64 string headers"
    if "manifest" in o and not isinstance(o["manifest"], dict):
        return "manifest", "is not an object"
    return None


def validate(data: Any) -> None:
    """Raise :class:`BundleError` naming the first offending field, or return quietly."""
    check_schema(data, "bundle", FORMAT, _compiled(), BundleError)
    for i, o in enumerate(data["objects"]):
        if object_ok(o):
            continue
        bad = object_problem(o)
        if bad is not None:
            where = f"objects[{i}]" + (f".{bad[0]}" if bad[0] else "")
            raise BundleError(f"bundle field {where}: {bad[1]}", where)


def is_bundle(data: Any) -> bool:
    """Whether a parsed handoff document is a bundle (else it is treated as a manifest)."""
    return isinstance(data, dict) and data.get("format") == FORMAT


def loads(text: str | bytes, source: str = "bundle") -> Bundle:
    return Bundle.from_dict(parse_json(text, source, "bundle", BundleError), consume=True)


def read_raw(path: str | os.PathLike[str]) -> bytes:
    """A bundle file's bytes (66 when missing or unreadable), for :func:`loads` and a digest of them."""
    return read_document(path, "bundle", "Check the path, or ask the admin to mint one.")[0]


def load(path: str | os.PathLike[str], stdin: BinaryIO | None = None) -> Bundle:
    raw, name = read_document(path, "bundle", "Check the path, or ask the admin to mint one.", stdin)
    data = parse_json(raw, name, "bundle", BundleError)
    if not is_bundle(data) and isinstance(data, dict) and data.get("format") == "s3mpu.manifest/1":
        raise BundleError(f"{name} is a manifest (one file), not a bundle", "format",
                          f"Upload one file with: s3mpu put {path} FILE")
    return Bundle.from_dict(data, consume=True)


def dump(bundle: Bundle, path: str | os.PathLike[str], stdout: Any = None) -> None:
    """Write ``bundle`` atomically with mode 0600 (``-`` writes to stdout); it holds bearer URLs."""
    write_private(path, bundle.to_json(), stdout)


__all__ = ["FORMAT", "MAX_KEY_BYTES", "MAX_OBJECTS", "MAX_SINGLE_PUT", "Bundle", "BundleObject", "BundleError",
           "path_problem", "key_for", "key_problem", "is_bundle", "load", "loads", "dump", "read_raw",
           "schema"]
