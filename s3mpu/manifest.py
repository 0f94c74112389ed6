"""Manifest v1: the JSON handoff from admin to user (SPEC §3).

A manifest is bearer material (every URL is a credential for one part), so it is written
atomically with mode 0600 and its URLs' signatures are redacted from anything shown to humans.
Loading validates against the JSON Schema shipped in the package *and* the layout arithmetic,
so a truncated or tampered manifest is refused with the offending field named, never a traceback.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

from s3mpu.compat import fchmod_private
from s3mpu.errors import ManifestError, NoInputError
from s3mpu.layout import part_count
from s3mpu.manifest_urls import check_urls
from s3mpu.units import parse_iso

FORMAT = "s3mpu.manifest/1"
#: a credential-bearing query parameter (SigV4 and SigV2 spellings) and its value
_SECRET_PARAM = re.compile(r"([?&](?:x-amz-signature|signature|x-amz-security-token|x-amz-credential|awsaccesskeyid)=)"
                           r"[^&]*", re.IGNORECASE)


@dataclass(frozen=True)
class Part:
    """One presigned part: where it lies in the file and the URL that accepts exactly it."""

    number: int
    offset: int
    size: int
    url: str
    md5: str | None = None  # hex; set when the URL binds Content-MD5 (content-bound manifests)


@dataclass(frozen=True)
class Relay:
    """Where to ask for completion, and the token that proves we hold a minted manifest."""

    url: str | None
    token: str | None = None


@dataclass(frozen=True)
class Manifest:
    """Everything a user without credentials needs to upload one object."""

    endpoint: str
    region: str
    bucket: str
    key: str
    upload_id: str
    size: int
    size_is_max: bool
    part_size: int
    created_at: str
    expires_at: str
    parts: tuple[Part, ...]
    content_type: str | None = None
    relay: Relay | None = None
    list_parts_url: str | None = None
    abort_url: str | None = None
    #: further ListParts pages (markers 1000, 2000, ...) for uploads of more than 1000 parts
    list_parts_pages: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    signature_version: str = "s3v4"
    sha256: str | None = None
    format: str = FORMAT

    # -- derived -------------------------------------------------------------------------
    @property
    def expires(self) -> datetime:
        return parse_iso(self.expires_at)

    @property
    def created(self) -> datetime:
        return parse_iso(self.created_at)

    def seconds_left(self, now: datetime | None = None) -> float:
        return (self.expires - (now or datetime.now(timezone.utc))).total_seconds()

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def part(self, number: int) -> Part:
        return self.parts[number - 1]

    def parts_for_file(self, file_size: int) -> list[Part]:
        """The parts a file of ``file_size`` bytes fills, with the last one trimmed.

        For an exact manifest that is every part unchanged; for a ``size_is_max`` manifest the
        unused trailing parts are dropped (they are simply never uploaded).
        """
        if not self.size_is_max:
            return list(self.parts)
        n = part_count(file_size, self.part_size)
        out = list(self.parts[:n])
        last = out[-1]
        out[-1] = replace(last, size=file_size - last.offset)
        return out

    def with_updates(self, **changes: Any) -> Manifest:
        return replace(self, **changes)

    # -- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The manifest as SPEC §3's JSON object (built by hand: ``asdict`` deep-copies 10,000 parts)."""
        out: dict[str, Any] = {
            "format": self.format, "endpoint": self.endpoint, "region": self.region, "bucket": self.bucket,
            "key": self.key, "upload_id": self.upload_id, "size": self.size, "size_is_max": self.size_is_max,
            "part_size": self.part_size, "created_at": self.created_at, "expires_at": self.expires_at,
            "content_type": self.content_type, "metadata": dict(self.metadata),
            "signature_version": self.signature_version, "sha256": self.sha256,
            "parts": [{"number": p.number, "offset": p.offset, "size": p.size, "url": p.url, "md5": p.md5}
                      for p in self.parts],
            "relay": {"url": self.relay.url, "token": self.relay.token} if self.relay else None,
            "list_parts_url": self.list_parts_url, "abort_url": self.abort_url}
        if self.list_parts_pages:  # only large uploads carry it: small manifests keep SPEC §3's shape
            out["list_parts_pages"] = list(self.list_parts_pages)
        return out

    def to_json(self, indent: int | None = 1) -> str:
        """Readable JSON: one field a line, one part a line.

        Why not ``json.dumps(indent=1)``: with an indent the json module falls back to its pure-Python
        encoder, a quarter of a second for 10,000 parts; each line here goes through the C one.
        """
        d = self.to_dict()
        if indent is None:
            return json.dumps(d) + "\n"
        pad = " " * indent
        lines = []
        for k, v in d.items():
            if k == "parts":
                # One C-encoder call for the whole list, then a line break between parts. Safe: a
                # '"' inside a string is always escaped, so '}, {"number": ' occurs only between parts.
                body = json.dumps(v)[1:-1].replace('}, {"number": ', f'}},\n{pad}{pad}{{"number": ')
                lines.append(f'{pad}"parts": [\n{pad}{pad}{body}\n{pad}]')
            else:
                lines.append(f"{pad}{json.dumps(k)}: {json.dumps(v)}")
        return "{\n" + ",\n".join(lines) + "\n}\n"

    def redacted(self) -> dict[str, Any]:
        """The manifest as a dict with every URL signature and the relay token masked (for display)."""
        d = self.to_dict()
        for p in d["parts"]:
            p["url"] = redact_url(p["url"])
        for k in ("list_parts_url", "abort_url"):
            if d[k]:
                d[k] = redact_url(d[k])
        if "list_parts_pages" in d:
            d["list_parts_pages"] = [redact_url(u) for u in d["list_parts_pages"]]
        if d["relay"] and d["relay"].get("token"):
            d["relay"]["token"] = redact_token(d["relay"]["token"])
        return d

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        validate(data)
        parts = tuple(Part(p["number"], p["offset"], p["size"], p["url"], p.get("md5")) for p in data["parts"])
        relay = data.get("relay")
        m = cls(
            endpoint=data["endpoint"], region=data["region"], bucket=data["bucket"], key=data["key"],
            upload_id=data["upload_id"], size=data["size"], size_is_max=data["size_is_max"],
            part_size=data["part_size"], created_at=data["created_at"], expires_at=data["expires_at"],
            parts=parts, content_type=data.get("content_type"),
            relay=Relay(relay.get("url"), relay.get("token")) if relay else None,
            list_parts_url=data.get("list_parts_url"), abort_url=data.get("abort_url"),
            list_parts_pages=tuple(data.get("list_parts_pages") or ()),
            metadata=dict(data.get("metadata") or {}), signature_version=data.get("signature_version", "s3v4"),
            sha256=data.get("sha256"),
        )
        _check_layout(m)
        check_urls(m)  # swapped or edited URLs: refused on load, not found at complete
        return m


def redact_url(url: str) -> str:
    """Keep a URL recognisable (host, path, part number) while masking its credentials."""
    return _SECRET_PARAM.sub(r"\1REDACTED", url.split("#", 1)[0])


def redact_token(token: str) -> str:
    return token.rsplit(".", 1)[0] + ".REDACTED" if "." in token else "REDACTED"


@cache
def schema() -> dict[str, Any]:
    """The manifest JSON Schema shipped in the package."""
    return json.loads(resources.files("s3mpu.schema").joinpath("manifest-v1.json").read_text("utf-8"))


@cache
def _compiled() -> Callable[[Any], Any]:
    """The shipped schema compiled to Python by fastjsonschema (~2 µs a part: 20 ms for 10,000).

    ``format`` keywords are not checked here: :func:`_check_layout` parses the two times itself.
    """
    import fastjsonschema

    return fastjsonschema.compile(schema(), use_formats=False)


def validate(data: Any) -> None:
    """Raise :class:`ManifestError` naming the first offending field, or return quietly."""
    check_schema(data, "manifest", FORMAT, _compiled(), ManifestError)


def check_schema(data: Any, kind: str, fmt: str, validator: Callable[[Any], Any],
                 error: Callable[[str, str], Exception]) -> None:
    """A handed-over document against its compiled schema: ``error(message, field)`` names the first bad field.

    Shared by the manifest and the bundle: both are JSON objects whose ``format`` says what they are.
    """
    if not isinstance(data, dict):
        raise error(f"{kind} is not a JSON object", "")
    if data.get("format") != fmt:
        raise error(f"not an s3mpu {kind} (format is {data.get('format')!r}, expected {fmt!r})", "format")
    from fastjsonschema import JsonSchemaValueException

    try:
        validator(data)
    except JsonSchemaValueException as exc:
        where = _field_name(exc.name or "data")
        raise error(f"{kind} field {where}: {_short(exc)}", where) from None


def _field_name(name: str) -> str:
    """fastjsonschema's ``data.parts[3].url`` -> ``parts[3].url``."""
    return name.removeprefix("data").removeprefix(".") or "(top level)"


def _short(error: Any) -> str:
    """What is wrong with the field, in a few words (the value cut short: it may be a whole URL)."""
    rule, definition, value = error.rule, error.definition or {}, error.value
    if rule == "required" and isinstance(value, dict):
        return ", ".join(repr(k) for k in definition.get("required", ()) if k not in value) + " is missing"
    if rule == "additionalProperties" and isinstance(value, dict):
        extra = sorted(set(value) - set(definition.get("properties", {})))
        return f"unexpected field{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}"
    inst = repr(value)
    inst = inst if len(inst) <= 40 else inst[:37] + "..."
    if rule == "pattern":
        return f"{inst} is malformed"
    if rule in definition:
        return f"{inst} is invalid ({rule} {definition[rule]!r})"
    return str(error.message).removeprefix("data").lstrip(".")[:200]


def _check_layout(m: Manifest) -> None:
    """Cross-field checks a schema cannot express: parts contiguous and consistent with size."""
    for name in ("created_at", "expires_at"):
        try:
            parse_iso(getattr(m, name))
        except ValueError:
            raise ManifestError(f"manifest field {name}: {getattr(m, name)!r} is not an ISO-8601 time", name) from None
    expected = part_count(m.size, m.part_size)
    if len(m.parts) != expected:
        raise ManifestError(
            f"manifest field parts: {len(m.parts)} parts, but size {m.size} in parts of {m.part_size} needs {expected}",
            "parts")
    for i, p in enumerate(m.parts):
        want_size = min(m.part_size, m.size - i * m.part_size)
        if p.number != i + 1 or p.offset != i * m.part_size or p.size != want_size:
            raise ManifestError(
                f"manifest field parts[{i}]: expected part {i + 1} at offset {i * m.part_size} of {want_size} bytes, "
                f"found part {p.number} at {p.offset} of {p.size}", f"parts[{i}]")


# -- files --------------------------------------------------------------------------------
def parse_json(text: str | bytes, source: str, kind: str, error: Callable[[str], Exception]) -> Any:
    """JSON of a handed-over document (manifest, plan): damage gives ``error`` (exit 65), never a traceback."""
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{source} is not valid JSON ({_json_err(exc)}); it may be truncated") from None
    except RecursionError:
        raise error(f"{source} is nested too deeply to be a {kind}") from None


def loads(text: str | bytes, source: str = "manifest") -> Manifest:
    """Parse and validate manifest text."""
    return Manifest.from_dict(parse_json(text, source, "manifest", ManifestError))


def _json_err(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120]


def read_document(path: str | os.PathLike[str], kind: str, missing_hint: str,
                  stdin: BinaryIO | None = None) -> tuple[bytes, str]:
    """``(bytes, name for messages)`` of a handed-over file (manifest, plan, bundle); ``-`` is stdin.

    One place for what every document's loader must say: missing or unreadable is 66, with the hint.
    """
    if str(path) == "-":
        return (stdin or sys.stdin.buffer).read(), f"{kind} on stdin"
    try:
        return Path(path).read_bytes(), f"{kind} {path}"
    except FileNotFoundError:
        raise NoInputError(f"{kind} not found: {path}", missing_hint) from None
    except OSError as exc:
        raise NoInputError(f"cannot read {kind} {path}: {exc.strerror or exc}") from None


def load(path: str | os.PathLike[str], stdin: BinaryIO | None = None) -> Manifest:
    """Read a manifest from a path, or from stdin when ``path`` is ``-``."""
    raw, name = read_document(path, "manifest", "Check the path, or ask the admin to mint one.", stdin)
    return loads(raw, name)


def dump(manifest: Manifest, path: str | os.PathLike[str], stdout: Any = None) -> None:
    """Write ``manifest`` to ``path`` atomically with mode 0600 (``-`` writes to stdout)."""
    write_private(path, manifest.to_json(), stdout)


def write_private(path: str | os.PathLike[str], text: str, stdout: Any = None) -> None:
    """Atomic write with mode 0600: a reader sees the old file or the whole new one, never a torn one."""
    if str(path) == "-":
        out = stdout or sys.stdout
        out.write(text)
        out.flush()
        return
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        fchmod_private(fd)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
