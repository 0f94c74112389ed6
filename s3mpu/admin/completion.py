"""Completing a multipart upload safely: verify what S3 holds, then complete (relay and admin side).

Some servers (rclone serve s3) destroy the whole upload after a failed CompleteMultipartUpload,
so a wrong complete is not a harmless error: every check is made with ListParts *before*
complete is called, and complete is only sent for a layout that matches what the admin minted.
Completion is idempotent: when the upload is already gone but the object is there with the
expected size, the same success is returned (a retry after a lost reply must not fail).
"""
from __future__ import annotations

import logging
from typing import Any

from s3mpu.errors import DataError, NoInputError, PartialError
from s3mpu.layout import composite_etag, part_count
from s3mpu.s3errors import classify_boto
from s3mpu.token import Identity

log = logging.getLogger("s3mpu.admin.completion")


def norm_etag(etag: Any) -> str:
    """An ETag without quotes, lower-case (servers and clients disagree on both)."""
    return str(etag or "").strip().strip('"').lower()


def _code(exc: BaseException) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


def list_parts(client: Any, bucket: str, key: str, upload_id: str, *, page_size: int = 1000) -> list[dict[str, Any]]:
    """Every part S3 holds for the upload, as ``{"number", "size", "etag"}``, following pagination."""
    out: dict[int, dict[str, Any]] = {}
    marker = 0
    for _ in range(10_001):  # a page holds at least one part; more pages than parts is a server bug
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "UploadId": upload_id, "MaxParts": page_size}
        if marker:
            kwargs["PartNumberMarker"] = marker
        try:
            page = client.list_parts(**kwargs)
        except Exception as exc:
            raise classify_boto(exc, f"listing the parts of upload {upload_id}") from None
        for p in page.get("Parts", []) or []:
            n = int(p["PartNumber"])
            out[n] = {"number": n, "size": int(p["Size"]), "etag": norm_etag(p.get("ETag"))}
        nxt = int(page.get("NextPartNumberMarker") or 0)
        if not page.get("IsTruncated") or nxt <= marker:
            break
        marker = nxt
    return [out[n] for n in sorted(out)]


def expected_layout(identity: Identity, held: list[dict[str, Any]], client_parts: list[dict[str, Any]] | None,
                    size: int | None) -> list[tuple[int, int | None]]:
    """``[(number, expected size or None for "at most part_size")]`` of the parts to complete."""
    ps = identity.part_size
    if not identity.size_is_max:
        if size is not None and size != identity.size:
            raise DataError(f"the client reports {size} bytes, but this upload was minted for exactly {identity.size}")
        return [(i + 1, min(ps, identity.size - i * ps)) for i in range(identity.parts)]
    if size is not None:
        if size > identity.size:
            raise DataError(f"the client reports {size} bytes, more than this upload's maximum of {identity.size}")
        k = part_count(size, ps)
        return [(i + 1, min(ps, size - i * ps)) for i in range(k)]
    if client_parts:
        k = max(int(p["number"]) for p in client_parts)
    elif held:
        k = max(p["number"] for p in held)
        last = next(p for p in held if p["number"] == k)
        contiguous = len(held) == k
        if contiguous and last["size"] == ps and k < identity.parts:
            # Only a short last part (or every part) shows where the file ends; otherwise more
            # parts may still be on their way and completing now would truncate the object.
            raise DataError(f"cannot tell where the file ends: parts 1-{k} are all full-sized and this upload "
                            f"allows up to {identity.parts} parts",
                            "Complete with the file's size (s3mpu complete from the machine that uploaded it).")
    else:
        raise PartialError("no part of this upload has reached S3 yet", "Upload the file first (s3mpu put).")
    if k > identity.parts:
        raise DataError(f"part {k} is beyond this upload's {identity.parts} parts")
    return [(i + 1, ps if i + 1 < k else None) for i in range(k)]


def verify_parts(identity: Identity, held: list[dict[str, Any]], client_parts: list[dict[str, Any]] | None = None,
                 size: int | None = None) -> list[dict[str, Any]]:
    """The parts to complete with, or an error saying exactly what does not match (nothing is changed)."""
    by_number = {p["number"]: p for p in held}
    layout = expected_layout(identity, held, client_parts, size)
    wanted = {n for n, _ in layout}
    if client_parts is not None:
        given = {}
        for p in client_parts:
            try:
                given[int(p["number"])] = p
            except (KeyError, TypeError, ValueError):
                raise DataError("every part in the client's list needs a number") from None
        if set(given) != wanted:
            extra = sorted(set(given) - wanted)
            lacking = sorted(wanted - set(given))
            raise DataError(f"the client's part list does not match the upload's layout "
                            f"(unexpected: {_ranges(extra) or 'none'}; not listed: {_ranges(lacking) or 'none'})")
    beyond = sorted(set(by_number) - wanted)
    if beyond:  # S3 would silently drop them (or, like rclone, fail and destroy the upload)
        raise DataError(f"S3 holds part(s) {_ranges(beyond)} of this upload beyond the {len(wanted)} being completed; "
                        "completing would drop them",
                        "Complete with the file's size or a part list naming every uploaded part; if those parts "
                        "are stray, abort (s3mpu abort) and ask for a new manifest.")
    missing = [n for n in sorted(wanted) if n not in by_number]
    if missing:
        raise PartialError(f"{len(missing)} of {len(wanted)} parts are not on the server: {_ranges(missing)}",
                           "Upload them (re-run s3mpu put; it resumes), then complete again.", failed=missing)
    parts = []
    total = 0
    for n, want in layout:
        got = by_number[n]
        fits = 0 < got["size"] <= identity.part_size or (n == 1 == len(layout) and got["size"] == 0)
        if (want is not None and got["size"] != want) or (want is None and not fits):
            raise DataError(f"part {n} on the server has {got['size']} bytes, expected "
                            f"{want if want is not None else f'1..{identity.part_size}'}",
                            "Upload that part again from the right file (s3mpu put), then complete.")
        if client_parts is not None:
            theirs = norm_etag(given[n].get("etag"))
            if theirs and theirs != got["etag"]:
                raise DataError(f"part {n} on the server has ETag {got['etag']}, the client sent {theirs}",
                                "The server holds other bytes than the client uploaded; upload that part again.")
            if given[n].get("size") is not None and int(given[n]["size"]) != got["size"]:
                raise DataError(f"part {n} on the server has {got['size']} bytes, the client sent {given[n]['size']}")
        total += got["size"]
        parts.append(got)
    if total > identity.size:
        raise DataError(f"the parts hold {total} bytes, more than this upload's {identity.size}")
    if size is not None and total != size:
        raise DataError(f"the parts hold {total} bytes, the client reports {size}")
    return parts


def complete_upload(client: Any, identity: Identity, parts: list[dict[str, Any]] | None = None,
                    size: int | None = None, *, object_size_header: bool = True) -> dict[str, Any]:
    """Verify, complete, and prove the object; ``{etag, size, key, bucket, parts}``. Idempotent.

    HeadObject is sent only when the complete reply does not already prove the object (SPEC §4):
    a reply ETag equal to the composite of the part ETags just verified with ListParts, whose
    sizes add up, names exactly those bytes, so a HEAD would only cost a round trip (and, on
    rclone's directory backend, a hash of the whole object).
    """
    b, k, u = identity.bucket, identity.key, identity.upload_id
    try:
        held = list_parts(client, b, k, u)
    except NoInputError:
        return _already_done(client, identity, parts, size)
    chosen = verify_parts(identity, held, parts, size)
    total = sum(p["size"] for p in chosen)
    kwargs: dict[str, Any] = {"Bucket": b, "Key": k, "UploadId": u, "MultipartUpload": {
        "Parts": [{"PartNumber": p["number"], "ETag": f'"{p["etag"]}"'} for p in chosen]}}
    if object_size_header:
        kwargs["MpuObjectSize"] = total
    try:
        reply = client.complete_multipart_upload(**kwargs)
    except Exception as exc:
        code = _code(exc)
        if code == "NoSuchUpload":  # a concurrent complete won the race
            return _already_done(client, identity, parts, size)
        if object_size_header and code in ("NotImplemented", "InvalidArgument", "InvalidRequest") \
                and "size" in str(exc).lower() and _upload_exists(client, identity):
            log.info("server refused x-amz-mp-object-size (%s); completing without it", code)
            return complete_upload(client, identity, parts, size, object_size_header=False)
        raise classify_boto(exc, f"completing s3://{b}/{k}") from None
    composite = _composite([p["etag"] for p in chosen])
    reply_etag = norm_etag(reply.get("ETag"))
    result = {"etag": reply_etag, "size": total, "key": k, "bucket": b, "parts": len(chosen)}
    if composite is not None and reply_etag == composite and total == _expected_total(identity, size, total):
        return result  # proven by the reply: no HeadObject
    head = _head(client, identity)
    if head is None:
        raise NoInputError(f"s3://{b}/{k} is not there after a successful complete", "Check the bucket, then retry.")
    if int(head["ContentLength"]) != total:
        raise DataError(f"s3://{b}/{k} has {head['ContentLength']} bytes after complete, expected {total}")
    result.update(_reported_etag(reply_etag or norm_etag(head.get("ETag")), composite))
    return result


def _composite(etags: list[str]) -> str | None:
    """The multipart ETag S3 gives these parts, or None when they are not MD5s (e.g. SSE-KMS)."""
    try:
        return composite_etag(etags) if all(len(e) == 32 for e in etags) else None
    except ValueError:
        return None


def _expected_total(identity: Identity, size: int | None, total: int) -> int:
    """What the verified parts must add up to (a max-size upload without a size: whatever they hold)."""
    if size is not None:
        return size
    return identity.size if not identity.size_is_max else total


def _reported_etag(etag: str, composite: str | None) -> dict[str, str]:
    """The ETag to return, the same on every complete of one upload.

    Some servers (rclone) report the composite in the complete reply but the plain MD5 of the
    object on HEAD, so a retry would see another ETag than the first complete returned: the
    composite stays the ETag, and the plain MD5 (still worth checking against the file) is
    returned as ``md5``.
    """
    if composite is not None and len(etag) == 32:
        return {"etag": composite, "md5": etag}
    return {"etag": etag}


def _head(client: Any, identity: Identity) -> dict[str, Any] | None:
    try:
        return client.head_object(Bucket=identity.bucket, Key=identity.key)  # type: ignore[no-any-return]
    except Exception as exc:
        if _code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise classify_boto(exc, f"checking s3://{identity.bucket}/{identity.key}") from None


def _upload_exists(client: Any, identity: Identity) -> bool:
    try:
        list_parts(client, identity.bucket, identity.key, identity.upload_id)
        return True
    except NoInputError:
        return False


def _already_done(client: Any, identity: Identity, parts: list[dict[str, Any]] | None,
                  size: int | None) -> dict[str, Any]:
    """The upload is gone: success only if the object is there and fits what was expected."""
    gone = NoInputError(f"upload {identity.upload_id} of s3://{identity.bucket}/{identity.key} no longer exists "
                        "and the object is not there with the expected size",
                        "It was aborted or expired; ask the admin to mint a new manifest.")
    head = _head(client, identity)
    if head is None:
        raise gone
    have = int(head["ContentLength"])
    want = size if size is not None else (identity.size if not identity.size_is_max else None)
    if (want is not None and have != want) or have > identity.size:
        raise gone
    etag = norm_etag(head.get("ETag"))
    try:
        expected = _composite([norm_etag(p.get("etag")) for p in sorted(parts, key=lambda p: int(p["number"]))]) \
            if parts else None
    except (TypeError, KeyError, ValueError):
        expected = None  # not a usable list: the size check above is all we can do
    if expected is not None and "-" in etag and etag != expected:
        raise gone
    suffix = etag.rsplit("-", 1)[1] if "-" in etag else ""
    n = int(suffix) if suffix.isdigit() else len(parts) if parts else part_count(have, identity.part_size)
    return {"size": have, "key": identity.key, "bucket": identity.bucket, "parts": n,
            **_reported_etag(etag, expected)}


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"`` (short messages even for thousands of parts)."""
    out: list[str] = []
    for n in sorted(numbers):
        if out and int(out[-1].split("-")[-1]) == n - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out[:20]) + (", ..." if len(out) > 20 else "")
