"""``s3mpu verify MANIFEST FILE``: does the finished object hold exactly this file's bytes?

Why the user needs this without credentials: a recipient who uploaded a file wants proof, days
later, that the object in the bucket is that file and not another version. The relay (which
holds the credentials) reports the completed object's size and ETag (``/v1/status``); the file's
part MD5s give the ETag S3 computes for a multipart object (the composite ``md5-of-md5s-N``) or,
on servers that report a plain MD5, the file's MD5. Without a relay, the record this machine
kept when it completed the upload is the only witness, and it says so.
"""
from __future__ import annotations

import os
from typing import Any

from s3mpu.errors import ConfigError, DataError, NoInputError
from s3mpu.layout import composite_etag
from s3mpu.manifest import Manifest
from s3mpu.user.journal import completed_note
from s3mpu.user.sources import FileSource


def verify_upload(m: Manifest, path: str | os.PathLike[str], relay: Any,
                  manifest_path: str = "MANIFEST") -> dict[str, Any]:
    """The comparison as a JSON-able dict; 65 when the object differs, 66 when there is no object yet."""
    source = FileSource.open(m, path)  # 66 missing, 65 a size the manifest cannot hold
    try:
        every, _ = source.parts(m, None)
        md5s, whole = source.md5s_and_whole(every)
        size = source.size
    finally:
        source.close()
    etag, osize, via = _object(m, relay, manifest_path, path, len(every))
    if osize != size:
        raise DataError(f"{m.uri} holds {osize} bytes, {path} has {size}: the object is not this file",
                        "Upload this file again with a new manifest from the admin.")
    etag = etag.strip('"').lower()
    if "-" in etag:
        want, checked = composite_etag(md5s), "size and composite ETag (each part's MD5)"
    elif len(etag) == 32:
        want, checked = whole, "size and MD5"
    else:  # an ETag that is neither form (server-side encryption with KMS, some gateways): size only
        want, checked = etag, "size only (the server's ETag is not an MD5 form)"
    if etag != want:
        raise DataError(f"{m.uri} differs from {path}: its ETag is {etag}, this file's would be {want}",
                        "The object holds other bytes; ask the admin for a new manifest to upload this file.")
    return {"bucket": m.bucket, "key": m.key, "size": size, "etag": etag, "match": True, "checked": checked,
            "via": via}


def _object(m: Manifest, relay: Any, manifest_path: str, path: Any, parts: int) -> tuple[str, int, str]:
    """``(etag, size, how we know)`` of the completed object: the relay, else this machine's record."""
    if relay is not None and m.relay and m.relay.token:
        st = relay.status(m.relay.token)
        if st.get("upload_exists"):
            held = len(st.get("parts") or [])
            raise NoInputError(f"{m.uri} is not complete yet: {held} of {parts} parts are on the server",
                               f"Finish it first: s3mpu put {manifest_path} {path}")
        if not st.get("completed"):
            raise NoInputError(f"{m.uri} does not exist: the upload was aborted, cleaned up or expired",
                               "Ask the admin for a new manifest.")
        return str(st.get("etag") or ""), int(st.get("size", -1)), "relay"
    note = completed_note(m.upload_id)
    if note is None or note.get("etag") is None or note.get("size") is None:
        raise ConfigError("this manifest names no relay, and this machine has no record of completing the upload: "
                          "nothing here can tell what the bucket holds",
                          f"Ask the admin to compare with credentials: s3mpu info {manifest_path}; aws s3api "
                          f"head-object --bucket {m.bucket} --key {m.key}")
    return str(note["etag"]), int(note["size"]), "this machine's record of completing it"


__all__ = ["verify_upload"]
