"""The state of each object of a bundle, and ``complete``/``abort`` over its multipart objects.

Why per kind: a single-PUT object has no upload to ask about; it is ``done`` when this
machine's bundle journal recorded its verified ETag, else ``not_started`` (or ``expired`` once
its URL cannot be used any more). A multipart object is what ``status MANIFEST`` says of its
embedded manifest (:func:`s3mpu.user.status.upload_status`): ``done`` (completed),
``in_progress`` (parts held), ``aborted``, or ``expired``.
"""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from s3mpu.bundle import Bundle, BundleObject
from s3mpu.errors import S3mpuError

DONE, IN_PROGRESS, NOT_STARTED, ABORTED, EXPIRED = "done", "in_progress", "not_started", "aborted", "expired"
STATES = (DONE, IN_PROGRESS, NOT_STARTED, ABORTED, EXPIRED)


def bundle_status(b: Bundle, *, relay_url: str | None = None, state_dir: Path | None = None,
                  now: datetime | None = None, directory: str | None = None) -> dict[str, Any]:
    """``{"bundle", "objects": [{"path", "key", "state", "size", "detail"}], "totals": {state: n}}``.

    With ``directory``, an object not yet done also says whether its file is there with the
    bundle's size (what ``put`` would refuse: missing 66, another size 65).
    """
    from s3mpu.user.bundle_journal import BundleJournal

    done = BundleJournal.open(b.id, state_dir).done
    expired = (now or datetime.now(timezone.utc)) >= b.expires

    def one(o: BundleObject) -> dict[str, Any]:
        row: dict[str, Any] = {"path": o.path, "key": o.key, "size": o.size, "detail": ""}
        if o.path in done:
            return {**row, "state": DONE, "etag": done[o.path].etag}
        if o.manifest is None:
            row["state"] = EXPIRED if expired else NOT_STARTED
        else:
            row.update(_multipart(o, relay_url, state_dir, expired))
        if directory is not None:
            row["detail"] = "; ".join(filter(None, [row["detail"], _file_problem(directory, o)]))
        return row

    with ThreadPoolExecutor(8) as pool:  # one relay or ListParts call per multipart object
        rows = list(pool.map(one, b.objects))
    totals = Counter(r["state"] for r in rows)
    return {"bundle": b.uri, "expires_at": b.expires_at, "objects": rows,
            "totals": {s: totals.get(s, 0) for s in STATES}}


def _file_problem(directory: str, o: BundleObject) -> str:
    try:
        size = os.stat(os.path.join(directory, *o.path.split("/"))).st_size
    except OSError:
        return f"missing from {directory}"
    return "" if size == o.size else f"the file is {size} bytes, the bundle says {o.size}"


def _multipart(o: BundleObject, relay_url: str | None, state_dir: Path | None, expired: bool) -> dict[str, Any]:
    from s3mpu.user import status as single
    from s3mpu.user.upload import make_relay

    m = o.manifest
    assert m is not None
    data = single.upload_status(m, make_relay(m, relay_url, retries=1), None, state_dir)
    state = data["state"]
    if state == single.COMPLETED:
        return {"state": DONE, "etag": data.get("etag")}
    if state == single.IN_PROGRESS:
        held = len(data["parts_server"] or [])
        if expired:
            return {"state": EXPIRED, "detail": f"{held} of {data['parts_expected']} parts held; URLs expired"}
        return {"state": IN_PROGRESS if held else NOT_STARTED,
                "detail": f"{held} of {data['parts_expected']} parts on the server"}
    if state in (single.ABORTED, single.GONE):
        return {"state": ABORTED, "detail": "the upload no longer exists"}
    return {"state": EXPIRED if expired else NOT_STARTED, "detail": "; ".join(data["problems"])}


def for_each_multipart(b: Bundle, action: str, settings: Any, relay_url: str | None,
                       bundle_path: str | None = None) -> dict[str, Any]:
    """``complete`` or ``abort`` every multipart object; one row per object, errors kept per object."""
    from s3mpu.completing import abort_manifest, complete_manifest

    def one(o: BundleObject) -> dict[str, Any]:
        m = o.manifest
        assert m is not None
        try:
            if action == "complete":
                reply, how = complete_manifest(m, settings, relay_url=relay_url, manifest_path=bundle_path)
                return {"path": o.path, "key": o.key, "state": "completed", "etag": reply.get("etag"), "how": how}
            how = abort_manifest(m, settings, relay_url=relay_url)
            return {"path": o.path, "key": o.key, "state": "aborted", "how": how}
        except S3mpuError as exc:
            return {"path": o.path, "key": o.key, "state": "failed", "error": exc.message, "exit_code": exc.exit_code}

    with ThreadPoolExecutor(8) as pool:
        rows = list(pool.map(one, [o for o in b.objects if o.manifest is not None]))
    return {"bundle": b.uri, "action": action, "objects": rows}


__all__ = ["bundle_status", "for_each_multipart", "STATES"]
