"""Presigning the URLs of a manifest with botocore (never a hand-written signer).

Exact-size part URLs sign ``Content-Length`` so S3 itself refuses a part of the wrong size;
content-bound ones (from a plan) also sign ``Content-MD5`` so S3 refuses other bytes.

Why a fast path: ``generate_presigned_url`` costs ~210 µs a URL (2.1 s for 10,000 parts).
A profile shows only a third of it is signing; the rest is per-call machinery that gives
the same answer for every part of one upload: parameter validation, serialization,
endpoint-ruleset resolution, event hooks, and rebuilding the query string with
``parse_qs`` + ``percent_encode_sequence``. So we let botocore presign part 1 the normal
way, take that URL as the template (endpoint, addressing, path quoting, query order,
credential scope, X-Amz-Date, expiry and session token all as botocore chose them), and
sign the other parts with botocore's own ``S3SigV4QueryAuth`` (canonical request,
string-to-sign, signature), varying only ``partNumber`` and the signed
``Content-Length``/``Content-MD5`` headers. Before trusting the template we re-sign
part 1 through the fast path and require a byte-identical URL; anything unexpected
(SigV2, another signer, a hook that adds parameters, rotating credentials) falls back to
``generate_presigned_url`` for every part.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from s3mpu.layout import PartSpan

#: Query parameters SigV4 query auth adds; everything before them is the operation's own.
_AUTH_PARAMS = ("X-Amz-Algorithm=",)


def b64_md5(hex_md5: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_md5)).decode("ascii")


#: S3 returns at most this many parts per ListParts page.
LIST_PAGE = 1000


class Presigner:
    """Presigns the calls of one multipart upload for ``expires_in`` seconds."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str, expires_in: int) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.expires_in = expires_in
        #: True when the last part_urls() call used the fast path (for tests and -v output).
        self.fast_path_used = False
        #: True when it also signed from botocore's canonical request as a template (see _FastPartSigner.learn).
        self.template_used = False

    def _url(self, op: str, **params: Any) -> str:
        p = {"Bucket": self.bucket, "Key": self.key, "UploadId": self.upload_id, **params}
        return str(self.client.generate_presigned_url(op, Params=p, ExpiresIn=self.expires_in))

    @staticmethod
    def _part_params(span: PartSpan, sign_length: bool, md5_hex: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"PartNumber": span.number}
        if sign_length:
            params["ContentLength"] = span.size
        if md5_hex:
            params["ContentMD5"] = b64_md5(md5_hex)
        return params

    def part_url(self, span: PartSpan, sign_length: bool, md5_hex: str | None = None) -> str:
        """One part's URL through botocore's full ``generate_presigned_url`` pipeline."""
        return self._url("upload_part", **self._part_params(span, sign_length, md5_hex))

    def part_urls(self, spans: Sequence[PartSpan], sign_length: bool,
                  md5s: Sequence[str | None] | None = None) -> list[str]:
        """Every part's URL; the fast path when botocore's own output proves it equivalent."""
        self.fast_path_used = self.template_used = False
        if not spans:
            return []
        first = self.part_url(spans[0], sign_length, md5s[0] if md5s else None)
        fast = _FastPartSigner.from_reference(self.client, first, spans[0].number,
                                              self._headers(spans[0], sign_length, md5s[0] if md5s else None))
        if fast is None:
            return [first] + [self.part_url(s, sign_length, md5s[i + 1] if md5s else None)
                              for i, s in enumerate(spans[1:])]
        self.fast_path_used = True
        picks = sorted({0, len(spans) // 2, len(spans) - 1})  # the reference, and parts of other numbers and sizes
        fast.learn([(spans[i].number, self._headers(spans[i], sign_length, md5s[i] if md5s else None)) for i in picks])
        self.template_used = fast.templated
        urls = [first]
        fitting: dict[tuple[str, ...], bool] = {}  # fits() depends only on the header names
        for i, s in enumerate(spans[1:], start=1):
            md5 = md5s[i] if md5s else None
            headers = self._headers(s, sign_length, md5)
            names = tuple(headers)
            fits = fitting.get(names)
            if fits is None:
                fits = fitting[names] = fast.fits(headers)
            urls.append(fast.sign(s.number, headers) if fits else self.part_url(s, sign_length, md5))
        return urls

    @staticmethod
    def _headers(span: PartSpan, sign_length: bool, md5_hex: str | None) -> dict[str, str]:
        """The headers botocore puts on an UploadPart request for these parameters."""
        headers: dict[str, str] = {}
        if sign_length:
            headers["Content-Length"] = str(span.size)
        if md5_hex:
            headers["Content-MD5"] = b64_md5(md5_hex)
        return headers

    def list_parts_url(self, marker: int | None = None) -> str:
        """ListParts, optionally from ``part-number-marker`` (signed into the URL, so strict servers accept it)."""
        return self._url("list_parts", PartNumberMarker=marker) if marker else self._url("list_parts")

    def list_parts_pages(self, parts: int) -> list[str]:
        """One listing URL per further page of 1000 parts (S3's page size), for uploads of more than 1000 parts.

        A presigned URL cannot be paged by adding ``part-number-marker`` afterwards (the query is
        signed), so the pages are presigned up front at markers 1000, 2000, ...
        """
        return [self.list_parts_url(marker) for marker in range(LIST_PAGE, parts, LIST_PAGE)]

    def abort_url(self) -> str:
        return self._url("abort_multipart_upload")


class _FastPartSigner:
    """Signs further parts of one upload from a botocore-made template URL (see module doc)."""

    def __init__(self, auth: Any, base: str, before: list[str], after: list[str], host: str,
                 timestamp: str, auth_query: str, signed_headers: str) -> None:
        self._auth = auth
        self._signed = tuple(signed_headers.split(";"))
        self._base = base
        self._before = "&".join(before)
        self._after = "&".join(after)
        self._host = host
        self._timestamp = timestamp
        self._auth_query = auth_query
        self._url_head = f"{base}?{self._before}{'&' if before else ''}partNumber="
        self._url_tail = f"{'&' if after else ''}{self._after}&{auth_query}"
        from botocore.awsrequest import AWSRequest

        self._request_cls = AWSRequest
        self._template: _Template | None = None

    @classmethod
    def from_reference(cls, client: Any, reference: str, number: int,
                       headers: dict[str, str]) -> _FastPartSigner | None:
        """A signer reproducing ``reference`` exactly, or None when it cannot (then use the slow path)."""
        try:
            signer = cls._build(client, reference, number)
            if signer is None or not signer.fits(headers) or signer.sign(number, headers) != reference:
                return None
            return signer
        except Exception:  # noqa: BLE001 - any surprise means: trust botocore's slow path
            return None

    @classmethod
    def _build(cls, client: Any, reference: str, number: int) -> _FastPartSigner | None:
        from botocore.auth import S3SigV4QueryAuth

        if "?" not in reference:
            return None
        base, query = reference.split("?", 1)
        items = query.split("&")
        auth_at = next((i for i, it in enumerate(items) if it.startswith(_AUTH_PARAMS)), None)
        if auth_at is None or not items[-1].startswith("X-Amz-Signature="):
            return None  # not SigV4 query auth (e.g. SigV2's Signature=/AWSAccessKeyId=)
        op_items, auth_items = items[:auth_at], items[auth_at:-1]
        marker = f"partNumber={number}"
        if op_items.count(marker) != 1:
            return None
        at = op_items.index(marker)
        auth = dict(parse_qsl("&".join(auth_items), keep_blank_values=True))
        scope = auth.get("X-Amz-Credential", "").split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            return None
        access_key, _day, region, service, _ = scope
        creds_source = client._request_signer._credentials  # noqa: SLF001 - botocore has no public accessor
        if creds_source is None:
            return None
        creds = creds_source.get_frozen_credentials()
        if creds.access_key != access_key:
            return None
        if (creds.token or None) != (auth.get("X-Amz-Security-Token") or None):
            return None
        signer = S3SigV4QueryAuth(creds, service, region, int(auth["X-Amz-Expires"]))
        host = signer.headers_to_sign(cls._probe(base))["host"]
        return cls(signer, base, op_items[:at], op_items[at + 1:], host, auth["X-Amz-Date"],
                   "&".join(auth_items), auth["X-Amz-SignedHeaders"])

    @staticmethod
    def _probe(base: str) -> Any:
        from botocore.awsrequest import AWSRequest

        return AWSRequest(method="PUT", url=base)

    def sign(self, number: int, headers: dict[str, str]) -> str:
        """The presigned URL of part ``number`` with these signed headers, via botocore's signer."""
        url = f"{self._url_head}{number}{self._url_tail}"
        template = self._template
        if template is not None:
            canonical = template.canonical(number, headers)
            string_to_sign = template.sts_prefix + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
            return f"{url}&X-Amz-Signature={template.signature(string_to_sign)}"
        request = self._request(url, headers)
        canonical = self._auth.canonical_request(request)
        string_to_sign = self._auth.string_to_sign(request, canonical)
        signature = self._auth.signature(string_to_sign, request)
        self._auth._inject_signature_to_request(request, signature)  # noqa: SLF001 - botocore's own step
        return str(request.url)

    @property
    def templated(self) -> bool:
        return self._template is not None

    def _request(self, url: str, headers: dict[str, str]) -> Any:
        hdrs = dict(headers)
        hdrs["host"] = self._host
        request = self._request_cls(method="PUT", url=url, headers=hdrs)
        request.context["timestamp"] = self._timestamp
        return request

    def learn(self, samples: list[tuple[int, dict[str, str]]]) -> None:
        """Sign further parts from botocore's canonical request of the first sample, once proven.

        Why: building an ``AWSRequest`` and its canonical form is most of the ~45 µs a part
        still costs. Within one upload the canonical request differs only in ``partNumber``
        and the signed header values, so botocore's own canonical request of one part becomes
        a template; it is kept only if it reproduces botocore's canonical request, string to
        sign and signature for every sample (parts with another number and another size). The
        signing key is botocore's too: its four derivation HMACs are the same for every part, so
        the key its ``signature()`` derives is taken once (:func:`_signing_key`) and only the last
        HMAC is computed per part.
        """
        try:
            first_number, first_headers = samples[0]
            op = "&".join(x for x in (self._before, f"partNumber={first_number}", self._after) if x)
            request = self._request(f"{self._base}?{op}&{self._auth_query}", first_headers)
            canonical = self._auth.canonical_request(request)
            sts = self._auth.string_to_sign(request, canonical)
            template = _Template.build(canonical, sts, first_number, first_headers, self._timestamp)
            if template is None:
                return
            signature, key = _signing_key(self._auth, sts, template)
            template.use_key(key)
            if template.signature(sts) != signature:
                return
            for number, headers in samples:
                op = "&".join(x for x in (self._before, f"partNumber={number}", self._after) if x)
                req = self._request(f"{self._base}?{op}&{self._auth_query}", headers)
                want = self._auth.canonical_request(req)
                want_sts = self._auth.string_to_sign(req, want)
                if template.canonical(number, headers) != want or \
                        template.sts_prefix + hashlib.sha256(want.encode("utf-8")).hexdigest() != want_sts or \
                        template.signature(want_sts) != self._auth.signature(want_sts, req):
                    return
            self._template = template
        except Exception:  # noqa: BLE001 - any surprise: keep botocore's per-part request path
            self._template = None

    def fits(self, headers: dict[str, str]) -> bool:
        """True when ``headers`` (plus host) are exactly the template's signed headers.

        X-Amz-SignedHeaders sits in the signed query string, so a part with another header
        set needs botocore's slow path (it never happens within one manifest today).
        """
        return tuple(sorted([*(h.lower() for h in headers), "host"])) == self._signed


class _Template:
    """botocore's canonical request of one part, with the part number and signed header values as holes."""

    def __init__(self, head: str, query_before: str, query_after: str, header_lines: list[tuple[str, str | None]],
                 tail: str, sts_prefix: str, timestamp: str) -> None:
        self.head, self.query_before, self.query_after = head, query_before, query_after
        self.header_lines, self.tail, self.sts_prefix = header_lines, tail, sts_prefix
        self.context = {"timestamp": timestamp}  # what botocore's signature() reads from a request
        self._key = b""
        # The canonical request as fixed text around the holes, joined in one go per part.
        self._fixed_head = f"{head}\n{query_before}{'&' if query_before else ''}partNumber="
        self._fixed_query_end = f"{'&' if query_after else ''}{query_after}\n"

    @classmethod
    def build(cls, canonical: str, sts: str, number: int, headers: dict[str, str],
              timestamp: str) -> _Template | None:
        lines = canonical.split("\n")
        if len(lines) < 6 or "" not in lines[3:]:
            return None
        items = lines[2].split("&")
        marker = f"partNumber={number}"
        if items.count(marker) != 1:
            return None
        at = items.index(marker)
        blank = lines.index("", 3)
        varying = {k.lower(): v for k, v in headers.items()}
        header_lines: list[tuple[str, str | None]] = []
        for line in lines[3:blank]:
            name, _, value = line.partition(":")
            if name in varying:
                if value != " ".join(varying[name].split()):
                    return None
                header_lines.append((name, None))
            else:
                header_lines.append((line, line))
        if {n for n, fixed in header_lines if fixed is None} != set(varying):
            return None
        prefix, _, digest = sts.rpartition("\n")
        if len(digest) != 64:
            return None
        return cls("\n".join(lines[:2]), "&".join(items[:at]), "&".join(items[at + 1:]), header_lines,
                   "\n".join(lines[blank:]), prefix + "\n", timestamp)

    def canonical(self, number: int, headers: dict[str, str]) -> str:
        values = {k.lower(): v for k, v in headers.items()}
        hdrs = "\n".join([fixed if fixed is not None else f"{name}:{' '.join(values[name].split())}"
                          for name, fixed in self.header_lines])
        return f"{self._fixed_head}{number}{self._fixed_query_end}{hdrs}\n{self.tail}"

    def use_key(self, key: bytes) -> None:
        self._key = key

    def signature(self, string_to_sign: str) -> str:
        """botocore's last SigV4 step, ``_sign(k_signing, string_to_sign, hex=True)``, from the key it derived."""
        return hmac.digest(self._key, string_to_sign.encode("utf-8"), "sha256").hex()


def _signing_key(auth: Any, string_to_sign: str, request: Any) -> tuple[str, bytes]:
    """botocore's signature of ``string_to_sign`` and the signing key its ``signature()`` derived for it.

    SigV4's key is four HMACs over the secret, the day, the region and the service: the same
    for every part of one upload. botocore has no public accessor for it, so its ``_sign`` is
    watched during one real ``signature()`` call and the key of the final (hex) HMAC is kept.
    """
    keys: list[bytes] = []
    own = vars(auth).get("_sign")  # normally None: _sign is the class's method
    real = auth._sign  # noqa: SLF001 - botocore's own HMAC step, watched for one call

    def watch(key: bytes, msg: str, hex: bool = False) -> Any:  # noqa: A002 - botocore's signature
        if hex:
            keys.append(key)
        return real(key, msg, hex=hex)

    auth._sign = watch  # noqa: SLF001
    try:
        signature = auth.signature(string_to_sign, request)
    finally:
        if own is None:
            del auth._sign  # back to the class's method
        else:
            auth._sign = own  # noqa: SLF001
    if len(keys) != 1:
        raise ValueError("botocore's signature() did not end in one hex HMAC")
    return str(signature), keys[0]


__all__ = ["Presigner", "b64_md5"]
