"""Before and on resuming an upload: one cheap look at the server, and which parts it already holds.

Split from :mod:`s3mpu.user.upload` (which decides what to send) because these steps talk to the
server before any byte goes out: the presigned ListParts request gives the server's clock (for
skew and expiry warnings), proves the URLs still work (an expired manifest stops here with
nothing sent), and, when the local journal is lost, tells which parts S3 holds. A held part
is trusted only when its size and ETag match the local file's MD5.
"""
from __future__ import annotations

import shlex
import threading
import time
from contextvars import ContextVar
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import urllib3

from s3mpu.errors import AccessDeniedError, NoInputError, S3mpuError, TempFailError, UnsupportedError
from s3mpu.user.httpclient import HttpClient, ListedParts, list_parts
from s3mpu.manifest import Manifest, Part
from s3mpu.user.transfer import CHUNK, hash_range


#: The put command line exactly as the user gave it (set by the CLI; unset for library callers).
#: Hints quote it whole: a re-run that silently dropped ``--limit-rate`` or ``--parts`` would
#: behave differently from the run it resumes.
COMMAND_LINE: ContextVar[str | None] = ContextVar("s3mpu_command_line", default=None)


def next_commands(manifest_path: str | None, file_path: str) -> tuple[str, str]:
    """``(manifest path, the command that resumes this put)`` for hints."""
    mp = manifest_path or "MANIFEST"
    given = COMMAND_LINE.get()
    return mp, given or f"s3mpu put {shlex.quote(mp)} {shlex.quote(file_path)}"



@dataclass
class Preflight:
    server_now: datetime | None
    skew: float | None
    listed: ListedParts | None


def preflight(m: Manifest, http: HttpClient, manifest_path: str | None, file_path: str,
              attempts: int = 3, sleep: Callable[[float], Any] = time.sleep) -> Preflight:
    """One cheap presigned request before any byte: server clock, URL validity, parts held."""
    refresh_hint = expired_hint(manifest_path, file_path)
    last: Exception | None = None
    for i in range(max(1, attempts)):
        try:
            listed = None
            if m.list_parts_url:
                try:
                    listed = list_parts(http, m.list_parts_url, pages=m.list_parts_pages)
                except (TempFailError, UnsupportedError):
                    listed = None  # no ListParts on this server (s3rver: 405) or a 5xx: go on without it
            if listed is not None:
                date = listed.date
            else:
                listed = None
                date = http.request("HEAD", m.endpoint).date
            local = datetime.now(timezone.utc)
            skew = (local - date).total_seconds() if date else None
            return Preflight(date, skew, listed)
        except AccessDeniedError as exc:
            if "expired" in exc.message or datetime.now(timezone.utc) >= m.expires:
                raise AccessDeniedError(exc.message + "; nothing was sent", refresh_hint) from None
            raise
        except TempFailError as exc:
            last = exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            last = TempFailError(f"cannot reach S3 at {m.endpoint} ({_reason(exc)})",
                                 "Check the network (and any proxy), then re-run the same command.")
        if i + 1 < attempts:
            sleep(0.5 * 2**i)
    assert last is not None
    raise last


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).split(": ", 1)[-1][:160]


def expired_hint(manifest_path: str | None, file_path: str) -> str:
    mp, put = next_commands(manifest_path, file_path)
    return (f"Ask the admin to run: s3mpu mint --refresh {mp} -o NEW.json ; then resume with: "
            f"{put.replace(shlex.quote(mp), 'NEW.json', 1)}")


def resume_from_server(m: Manifest, parts: Sequence[Part], held: Sequence[dict[str, Any]], fd: int,
                       cancel: threading.Event | None = None) -> dict[int, str]:
    """Parts S3 holds whose size and ETag match the local MD5: ``{number: md5}``.

    Not journalled here: the caller records them once the run is sure to go on, so a run
    that sends nothing (a refused file) leaves the journal as it was.
    """
    by_number = {p.number: p for p in parts}
    done: dict[int, str] = {}
    buf = bytearray(CHUNK)
    for h in held:
        p = by_number.get(int(h.get("number", 0)))
        if p is None or int(h.get("size", -1)) != p.size:
            continue
        md5 = hash_range(fd, p.offset, p.size, buf, cancel)
        if md5 == str(h.get("etag", "")).strip('"').lower():
            done[p.number] = md5
    return done


def server_parts(m: Manifest, relay: Any, pre: Preflight, warn: Callable[[str], None]) -> list[dict[str, Any]] | None:
    """Which parts S3 holds: the preflight's presigned listing when it is whole, else the relay's status.

    The listing is already in hand (preflight fetched it straight from S3), so asking the relay
    too would only add a round trip and a dependency on the relay being up.
    """
    if pre.listed is not None and pre.listed.complete:
        return pre.listed.parts
    if relay is not None and m.relay and m.relay.token:
        try:
            st = relay.status(m.relay.token)
            return list(st.get("parts") or [])
        except S3mpuError as exc:
            warn(f"relay status failed ({exc.message}); using the manifest's ListParts URL")
    if pre.listed is not None:
        if not pre.listed.complete:
            warn("the server's part listing was cut short; parts beyond it will be sent again")
        return pre.listed.parts
    return None


def relay_preflight(m: Manifest, relay: Any, manifest_path: str | None, file_path: str,
                    warn: Callable[[str], None]) -> dict[str, Any] | None:
    """One ``/v1/status`` before the first byte, when the relay will be needed to complete.

    Why: a relay for another S3 endpoint, or one that does not accept the token (another relay
    secret, an altered manifest), used to be found at complete, after every byte was sent. A
    relay that does not answer is not a reason to stop: the parts can go now, complete later.
    Returns the relay's status (its ``parts`` serve as the server's listing) or None.
    """
    if relay is None or not (m.relay and m.relay.token):
        return None
    mp = manifest_path or "MANIFEST"
    try:
        return dict(relay.status(m.relay.token))
    except AccessDeniedError as exc:
        text = exc.message
        if "expired" in text:
            hint = expired_hint(manifest_path, file_path)
        elif "endpoint" in text:
            hint = (f"This relay completes uploads for another S3 server; pass --relay with the relay set up "
                    f"for {m.endpoint}, or ask the admin to mint the manifest with the right --relay.")
        else:
            hint = ("The relay does not accept this manifest's token (minted with another relay secret, or "
                    f"altered); ask the admin for a manifest minted for this relay (s3mpu mint ... --relay URL), "
                    f"or pass --relay with the relay named when {mp} was minted.")
        raise AccessDeniedError(f"{text}; nothing was sent", hint) from None
    except NoInputError as exc:
        raise NoInputError(f"{exc.message}; nothing was sent",
                           "Check that --relay (or the manifest's relay URL) names an s3mpu relay.") from None
    except S3mpuError as exc:
        warn(f"the relay did not answer ({exc.message}); uploading anyway, complete later with: s3mpu complete {mp}")
        return None


def etag_mismatches(recorded: dict[int, str], held: Sequence[dict[str, Any]]) -> list[int]:
    """Journalled parts the server holds with another ETag (another machine or file sent other bytes).

    A journal says what *this* machine sent; the server says what is there now. Trusting the
    journal alone made every re-run print "0 parts to send" and fail at complete, forever.
    """
    out = []
    for h in held:
        n = int(h.get("number", 0))
        want = recorded.get(n)
        etag = str(h.get("etag", "")).strip('"').lower()
        if want is not None and etag and "-" not in etag and etag != want:
            out.append(n)
    return sorted(out)
