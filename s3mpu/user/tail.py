"""The last part of a max-size upload: its URL comes from the relay once the length is known (SPEC §5).

With a relay, every part URL of a ``--max-size`` manifest signs a *full* part's Content-Length,
so the holder cannot store more than the manifest's maximum. The file (or stream) usually ends
inside a part, and that shorter last part needs a URL signed for its exact length: the relay's
``POST /v1/tail {token, size}`` gives it. This step is shared by ``put FILE`` and ``put -``
(a stream knows its size only when it ends).
"""
from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from s3mpu.errors import DataError, UsageError
from s3mpu.manifest import Manifest, Part


_SIGNED_HEADERS = re.compile(r"[?&]X-Amz-SignedHeaders=([^&#]*)")


def signed_length(url: str) -> bool:
    """Whether a presigned URL signs ``Content-Length`` (SigV4 lists it in ``X-Amz-SignedHeaders``).

    One regex instead of ``parse_qs`` of the whole query: ``info`` asks it of every part, and
    10,000 ``parse_qs`` calls cost ~0.4 s.
    """
    found = _SIGNED_HEADERS.search(url)
    return found is not None and "content-length" in unquote(found.group(1)).lower().split(";")


def needs_tail(m: Manifest, last: Part) -> bool:
    """True when ``last`` (a file's last part, trimmed) cannot use the manifest's own URL for its number."""
    return m.size_is_max and last.size != m.part(last.number).size and signed_length(last.url)


def with_tail_url(m: Manifest, relay_client: Any, size: int, parts: Sequence[Part],
                  done: Collection[int] = ()) -> list[Part]:
    """``parts`` with the last part's URL replaced by the relay's, when this upload needs one.

    ``size`` is the whole file's (or stream's) length; ``parts`` those this run sends (the last
    part of the file may be absent, e.g. with ``--parts``, or already ``done``: then nothing is asked).
    """
    out = list(parts)
    if not out or not m.size_is_max:
        return out
    last = out[-1]
    if last.number != len(m.parts_for_file(size)) or last.number in done or not needs_tail(m, last):
        return out
    if relay_client is None or not (m.relay and m.relay.token):
        raise UsageError(f"part {last.number} ({last.size} bytes) is the file's last part: its URL must come from "
                         "the relay, and this manifest names none",
                         "Ask the admin for a manifest minted with --relay, or with --size of the exact file.")
    reply = relay_client.tail(m.relay.token, size)
    number, length, url = reply.get("number"), reply.get("size"), reply.get("url")
    if number != last.number or length != last.size or not isinstance(url, str) or not url:
        raise DataError(f"the relay's last-part URL is for part {number} of {length} bytes, expected part "
                        f"{last.number} of {last.size}", "Check that --relay names this manifest's relay.")
    out[-1] = replace(last, url=url)
    return out


__all__ = ["signed_length", "needs_tail", "with_tail_url"]
