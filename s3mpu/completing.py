"""Completing an upload from its manifest, as ``s3mpu complete`` does, for the CLI and the Python API alike.

Why here and not in the CLI: a script holding a manifest must be able to finish an upload with
the same checks (the part MD5s this machine's journal recorded, the composite ETag and size
after complete) and the same choice of route: directly when S3 credentials are configured
(the admin), else through the manifest's relay (the user, who has none).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from s3mpu.config import Settings
from s3mpu.errors import ConfigError
from s3mpu.manifest import Manifest


def journal_md5s(m: Manifest) -> tuple[list[str] | None, int | None]:
    """Part MD5s and total size from this upload's journal when it covers parts 1..k of a layout."""
    from s3mpu.user.journal import journal_path, read

    header, parts = read(journal_path(m.upload_id))
    if header is None or not parts:
        return None, None
    size = int(header.get("size", -1))
    if size < 0:
        return None, None
    try:
        every = m.parts_for_file(size)
    except (IndexError, ValueError):
        return None, None
    if set(parts) != {p.number for p in every}:
        return None, None
    return [parts[p.number].md5 for p in every], size


def admin_client(settings: Settings, m: Manifest) -> Any | None:
    """An S3 client for the manifest's endpoint when admin credentials are configured, else None.

    None too where botocore is not installed (the packed recipient side, issue 21): credentials
    that happen to be in the environment there cannot be used, and the relay completes instead.
    """
    if not (settings.has_static_credentials() or settings.profile):
        return None
    import importlib.util

    if importlib.util.find_spec("botocore") is None:
        return None
    if not settings.endpoint_url:
        settings = replace(settings, endpoint_url=m.endpoint, region=settings.region or m.region)
    from s3mpu.config import s3_client

    return s3_client(settings)


def forget(m: Manifest) -> None:
    """Drop this upload's journal (the upload is completed or aborted: nothing is left to resume)."""
    from s3mpu.user.journal import journal_path

    journal_path(m.upload_id).unlink(missing_ok=True)


def complete_manifest(m: Manifest, settings: Settings, *, relay_url: str | None = None,
                      manifest_path: str | None = None) -> tuple[dict[str, Any], str]:
    """Complete the upload; ``(the relay's or S3's reply, how: "directly" or "through the relay")``.

    Idempotent: completing an already-completed upload succeeds again. The reply's ETag and size
    are checked against what this machine's journal says was sent.
    """
    from s3mpu.user.upload import complete_via_relay, make_relay, verify_completed

    md5s, size = journal_md5s(m)
    client = admin_client(settings, m)
    if client is not None:
        from s3mpu.admin.completion import complete_upload
        from s3mpu.token import Identity

        parts = [{"number": i + 1, "etag": e} for i, e in enumerate(md5s)] if md5s else None
        reply = complete_upload(client, Identity.from_manifest(m), parts, size)
        verify_completed(reply, md5s, size)
        how = "directly"
    elif (relay_url or (m.relay and m.relay.url)) and m.relay and m.relay.token:
        reply = complete_via_relay(m, make_relay(m, relay_url), md5s, size, manifest_path or "MANIFEST")
        how = "through the relay"
    else:
        raise ConfigError("this manifest names no relay and no S3 credentials are configured",
                          "Give it to the admin to run 's3mpu complete MANIFEST' with credentials.")
    forget(m)
    from s3mpu.user.journal import note_completed

    note_completed(m.upload_id, reply.get("etag"), reply.get("size"))  # status can say "completed" without a relay
    return reply, how


def abort_manifest(m: Manifest, settings: Settings, *, relay_url: str | None = None) -> str:
    """Abort the upload; how it was done. Tries the relay, then the presigned abort URL, then credentials.

    An upload that no longer exists counts as aborted (the abort URL's NoSuchUpload): aborting
    is idempotent, as a re-run of ``s3mpu abort`` (or of a bundle's) must be.
    """
    from s3mpu.errors import S3mpuError, TempFailError
    from s3mpu.s3errors import classify_http, xml_error
    from s3mpu.user.httpclient import HttpClient
    from s3mpu.user.upload import make_relay

    errors: list[S3mpuError] = []
    how = None
    relay = make_relay(m, relay_url)
    if relay is not None and m.relay and m.relay.token:
        try:
            relay.abort(m.relay.token)
            how = "through the relay"
        except S3mpuError as exc:
            errors.append(exc)
    if how is None and m.abort_url:
        http = HttpClient(1)
        try:
            r = http.request("DELETE", m.abort_url)
            code, _ = xml_error(r.body)
            if r.status in (200, 204) or code == "NoSuchUpload" or r.status == 404:
                how = "with the manifest's abort URL"
            else:
                errors.append(classify_http(r.status, r.body, "aborting the upload"))
        except Exception as exc:  # noqa: BLE001
            errors.append(TempFailError(f"aborting the upload: cannot reach {m.endpoint} ({type(exc).__name__})"))
        finally:
            http.close()
    if how is None:
        client = admin_client(settings, m)
        if client is not None:
            from s3mpu.admin.housekeeping import abort_upload

            abort_upload(client, m.bucket, m.key, m.upload_id)
            how = "directly"
    if how is None:
        if errors:
            raise errors[-1]
        raise ConfigError("this manifest names no relay or abort URL and no S3 credentials are configured",
                          "Ask the admin to run: s3mpu abortmp s3://BUCKET/KEY UPLOAD_ID")
    forget(m)
    return how


__all__ = ["complete_manifest", "abort_manifest", "journal_md5s", "admin_client", "forget"]
