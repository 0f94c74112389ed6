"""``s3mpu status``: what state one upload is in, truthfully (the CLI only formats this).

Why its own module: a status that only counted parts printed "server 0 of 38, missing 1-38"
for an upload that was completed an hour ago, or aborted by another tool. The state is one of

- ``in_progress``: the upload exists; parts held, journalled, missing, and any part the server
  holds with other bytes than this machine sent (``parts_mismatched``: re-run put to repair);
- ``completed``: the upload is gone and its object exists (the relay says so, with ETag and size,
  or this machine completed it and noted so);
- ``aborted``: gone and no object (aborted, cleaned up, or expired by a lifecycle rule);
- ``gone``: gone, and no relay to tell completed from aborted;
- ``unknown``: neither the relay nor the presigned listing answered.

Exit codes (SPEC §2): 0 for in progress or completed, 66 for aborted or gone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from s3mpu.errors import NoInputError, S3mpuError
from s3mpu.manifest import Manifest
from s3mpu.user.httpclient import HttpClient, list_parts
from s3mpu.user.journal import completed_note, journal_path, read
from s3mpu.user.resume import etag_mismatches

IN_PROGRESS, COMPLETED, ABORTED, GONE, UNKNOWN = "in_progress", "completed", "aborted", "gone", "unknown"


def upload_status(m: Manifest, relay: Any, file_size: int | None = None, state_dir: Path | None = None,
                  http: HttpClient | None = None) -> dict[str, Any]:
    """The upload's state as a JSON-able dict (see the module docstring for ``state``)."""
    header, jparts = read(journal_path(m.upload_id, state_dir))
    expected = m.parts_for_file(file_size) if file_size is not None else list(m.parts)
    server: list[dict[str, Any]] | None = None
    source: str | None = None
    problems: list[str] = []
    state = UNKNOWN
    obj: dict[str, Any] = {}
    if relay is not None and m.relay and m.relay.token:
        try:
            st = relay.status(m.relay.token)
            if st.get("upload_exists", True):
                server, source, state = list(st.get("parts") or []), "relay", IN_PROGRESS
            else:
                state, source = (COMPLETED if st.get("completed") else ABORTED), "relay"
                obj = {k: st[k] for k in ("etag", "size") if k in st}
        except S3mpuError as exc:
            problems.append(f"relay: {exc.message}")
    if state == UNKNOWN and m.list_parts_url:
        own = http is None
        http = http or HttpClient(1)
        try:
            server = list_parts(http, m.list_parts_url, pages=m.list_parts_pages).parts
            source, state = "list_parts_url", IN_PROGRESS
        except NoInputError:
            source, state = "list_parts_url", GONE
        except S3mpuError as exc:
            problems.append(f"ListParts: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - network errors: reported, not fatal for a status
            problems.append(f"ListParts: cannot reach {m.endpoint} ({type(exc).__name__})")
        finally:
            if own:
                http.close()
    note = completed_note(m.upload_id, state_dir) if state in (GONE, UNKNOWN) else None
    if note is not None:  # this machine saw it complete (put, or complete with credentials)
        state, source, server = COMPLETED, "local", None
        obj = {k: note[k] for k in ("etag", "size") if note.get(k) is not None}
    want = {p.number: p.size for p in expected}
    on_server = {int(p["number"]) for p in server or [] if want.get(int(p["number"])) == int(p["size"])}
    journalled = set(jparts) & set(want)
    mismatched = etag_mismatches({n: jparts[n].md5 for n in journalled}, server or [])
    done = (on_server - set(mismatched)) if server is not None else journalled
    missing = sorted(set(want) - done) if state in (IN_PROGRESS, UNKNOWN) else []
    mismatched = mismatched if state == IN_PROGRESS else []
    return {"bucket": m.bucket, "key": m.key, "upload_id": m.upload_id, "state": state, **obj,
            "expires_at": m.expires_at, "seconds_left": int(m.seconds_left()), "parts_expected": len(want),
            "parts_journal": sorted(journalled), "journal_file": header.get("path") if header else None,
            "parts_server": sorted(on_server) if server is not None else None, "server_source": source,
            "parts_mismatched": mismatched, "parts_missing": missing, "problems": problems}
