"""The end of a put: complete through the relay and check that the object is what was sent.

Split from :mod:`s3mpu.user.upload` (the steps of a put) because ``s3mpu complete`` and
``s3mpu status`` use the same checks without uploading anything. The relay's answer is not
taken on trust: the object's size must be ours and, where the server reports the composite
``-N`` ETag, it must be the MD5 of our part MD5s.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from s3mpu.errors import DataError, S3mpuError, TempFailError
from s3mpu.layout import composite_etag
from s3mpu.manifest import Manifest


def make_relay(m: Manifest, relay: Any, retries: int = 3, ca_bundle: str | None = None) -> Any:
    """A RelayClient for ``relay`` (client object or URL) or the manifest's relay; None without one."""
    if relay is not None and not isinstance(relay, str):
        return relay
    url = relay if isinstance(relay, str) else (m.relay.url if m.relay else None)
    if not url:
        return None
    from s3mpu.user.relayclient import RelayClient

    return RelayClient(url, retries=retries, ca_bundle=ca_bundle)


def complete_via_relay(m: Manifest, relay_client: Any, md5s: Sequence[str] | None, size: int | None,
                       manifest_path: str = "MANIFEST", rerun: str | None = None) -> dict[str, Any]:
    """Ask the relay to complete, then check size and composite ETag against what we sent.

    A relay killed (or cut off) mid-complete may have completed the object already: the message
    says so, and the re-run (``rerun``, default ``s3mpu complete``) tells which it was.
    """
    assert m.relay and m.relay.token
    parts = [{"number": i + 1, "etag": e} for i, e in enumerate(md5s)] if md5s else None
    try:
        reply = relay_client.complete(m.relay.token, parts=parts, size=size)
    except TempFailError as exc:
        again = rerun or f"s3mpu complete {manifest_path}"
        raise TempFailError(f"every part is uploaded, but completing failed: {exc.message}; the upload may already "
                            "be complete if the relay got the request",
                            f"Nothing needs re-sending; re-run later, it tells whether the object exists: {again}") from None
    verify_completed(reply, md5s, size)
    return reply


def verify_completed(reply: dict[str, Any], md5s: Sequence[str] | None, size: int | None) -> None:
    """The object must have our size and, where the server reports the ``-N`` form, our composite ETag."""
    got_size = reply.get("size")
    if size is not None and got_size is not None and int(got_size) != size:
        raise DataError(f"the completed object has {got_size} bytes, the file has {size}",
                        "Report this to the admin: the object does not match the file.")
    etag = str(reply.get("etag") or "").strip('"').lower()
    if md5s and "-" in etag:
        want = composite_etag(md5s)
        if etag != want:
            raise DataError(f"the completed object's ETag {etag} is not the composite of the parts sent ({want})",
                            "Report this to the admin: the object does not match the file.")


def already_completed(m: Manifest, relay_client: Any,
                      digest: Callable[[], tuple[list[str], str, int]]) -> dict[str, Any] | None:
    """When the upload is gone, ask the relay (idempotent complete) whether it became this source's object.

    ``digest()`` reads the source once more: ``(part MD5s, whole MD5, size)``. It is called only
    when there is a relay to ask (a stream read for nothing would be lost).
    """
    if relay_client is None or not (m.relay and m.relay.token):
        return None
    md5s, whole, size = digest()
    try:
        reply: dict[str, Any] = relay_client.complete(m.relay.token, parts=[{"number": i + 1, "etag": e}
                                                                            for i, e in enumerate(md5s)], size=size)
    except TempFailError as exc:  # not "ask for a new manifest": it may well be complete
        raise TempFailError(f"the upload no longer exists on the server: it was completed or aborted, and the relay "
                            f"could not tell which ({exc.message})", "Re-run the same command later; it will tell.") from None
    except S3mpuError:
        return None
    verify_completed(reply, md5s, size)
    etag = str(reply.get("md5") or reply.get("etag") or "").strip('"').lower()
    if len(etag) == 32 and etag != whole:  # servers like rclone report the plain MD5 of the object
        raise DataError(f"{m.uri} was already completed, but its MD5 {etag} is not this file's ({whole})",
                        "This upload holds other bytes; ask the admin for a new manifest to upload this file.")
    return reply


__all__ = ["make_relay", "complete_via_relay", "verify_completed", "already_completed", "composite_etag"]
