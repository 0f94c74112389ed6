"""A manifest's URLs must say what its fields say: part number, upload id, bucket and key.

Why on load: the signature covers each URL, so S3 accepts a swapped or edited URL for the
part *it* names, and the mistake showed only at complete, after every byte was sent (URLs of
parts 1 and 2 swapped), or never (an edited ``"key"`` printed one object's name while the bytes
went to another). Comparing each URL with the manifest's own fields costs a few microseconds a
part and refuses such a manifest before anything is sent (exit 65, naming the part).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from s3mpu.errors import ManifestError

if TYPE_CHECKING:
    from s3mpu.manifest import Manifest

_PART = re.compile(r"(?:^|&)partNumber=([^&]*)")
_UPLOAD = re.compile(r"(?:^|&)uploadId=([^&]*)")
_HINT = "The manifest was edited or damaged; ask the admin for a fresh copy (s3mpu mint)."


def check_urls(m: Manifest) -> None:
    """Raise :class:`ManifestError` (exit 65) for the first URL that disagrees with the manifest's fields."""
    checked_base: set[str] = set()
    for i, p in enumerate(m.parts):
        base, _, query = p.url.partition("?")
        field = f"parts[{i}].url"
        got = _PART.search(query)
        if got is None or got.group(1) != str(p.number):
            said = f"partNumber={unquote(got.group(1))}" if got else "no partNumber"
            raise ManifestError(f"manifest field {field}: the URL of part {p.number} has {said}", field, _HINT)
        _check_upload_id(m, query, field)
        if base not in checked_base:  # every part shares one base URL: check its path once
            _check_path(m, base, field)
            checked_base.add(base)
    for name, urls in (("list_parts_url", [m.list_parts_url]), ("abort_url", [m.abort_url]),
                       ("list_parts_pages", list(m.list_parts_pages))):
        for j, url in enumerate(u for u in urls if u):
            field = name if name != "list_parts_pages" else f"{name}[{j}]"
            base, _, query = url.partition("?")
            _check_upload_id(m, query, field)
            _check_path(m, base, field)


def _check_upload_id(m: Manifest, query: str, field: str) -> None:
    got = _UPLOAD.search(query)
    if got is None or (got.group(1) != m.upload_id and unquote(got.group(1)) != m.upload_id):
        said = "has no uploadId" if got is None else "is for another upload than the manifest's upload_id"
        raise ManifestError(f"manifest field {field}: the URL {said}", field, _HINT)


def _check_path(m: Manifest, base: str, field: str) -> None:
    """Path style ``/BUCKET/KEY`` (after any endpoint path), or virtual host ``BUCKET.host/KEY``."""
    u = urlsplit(base)
    path = unquote(u.path)
    host = (u.hostname or "").lower()
    if path.endswith(f"/{m.bucket}/{m.key}") or (host.startswith(f"{m.bucket.lower()}.") and path.endswith(f"/{m.key}")):
        return
    raise ManifestError(f"manifest field {field}: the URL is for {path!r} on {host}, not the manifest's "
                        f"bucket {m.bucket!r} and key {m.key!r}", field, _HINT)

