"""Talking to a relay from the user side: small JSON calls over urllib3 (never boto3).

The user holds no S3 credentials, only a manifest; the relay token in it is a bearer
credential, so it travels only in request bodies and never appears in a log line or an error
message. Connection failures and 5xx answers are retried with exponential backoff and jitter
(every call but ``mint`` is idempotent on the relay); what is left is mapped to the s3mpu
error whose exit code tells a script what to do next (SPEC §2).
"""
from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import urllib3

from s3mpu.errors import (AccessDeniedError, DataError, NoInputError, PartialError, S3mpuError, TempFailError,
                      UnsupportedError, UsageError)
from s3mpu.s3errors import UNSUPPORTED_HINT

log = logging.getLogger("s3mpu.user.relayclient")
RETRY_STATUS = frozenset({500, 502, 503, 504})


class RelayClient:
    """A client for one relay base URL (``https://relay.example:8443``)."""

    def __init__(self, url: str, timeout: float = 30.0, retries: int = 3, *,
                 ca_bundle: str | None = None, sleep: Callable[[float], None] = time.sleep,
                 backoff: float = 0.5) -> None:
        if not url or "://" not in url:
            raise UsageError(f"relay URL {url!r} is not a URL", "Use e.g. --relay https://relay.example:8443")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._sleep = sleep
        kwargs: dict[str, Any] = {"maxsize": 8, "retries": False,
                                  "timeout": urllib3.Timeout(connect=min(10.0, timeout), read=timeout)}
        if ca_bundle:
            kwargs["ca_certs"] = ca_bundle
        self._http = urllib3.PoolManager(**kwargs)

    # -- the API ------------------------------------------------------------------------
    def complete(self, token: str, parts: list[dict[str, Any]] | None = None, size: int | None = None) -> dict[str, Any]:
        """Ask the relay to verify every part and complete; a completed upload answers the same success."""
        body: dict[str, Any] = {"token": token}
        if parts is not None:
            body["parts"] = [{k: p[k] for k in ("number", "etag", "size") if k in p} for p in parts]
        if size is not None:
            body["size"] = size
        # S3 may take minutes to assemble a large object: wait longer than for the other calls
        return self._call("POST", "/v1/complete", body, "completing the upload", read_timeout=max(self.timeout, 600.0))

    def status(self, token: str) -> dict[str, Any]:
        """The parts S3 holds: ``{"parts": [{"number", "size", "etag"}], "upload_exists": bool}``."""
        return self._call("POST", "/v1/status", {"token": token}, "asking the relay for the upload's status")

    def abort(self, token: str) -> dict[str, Any]:
        return self._call("POST", "/v1/abort", {"token": token}, "aborting the upload")

    def refresh(self, token: str, expires: str | None = None, md5s: list[str] | None = None) -> dict[str, Any]:
        """A refreshed manifest (as a dict) for the same upload, with new URLs.

        ``md5s``: the manifest's part MD5s when it was minted from a plan; the relay checks them
        against the token and re-signs every part with its Content-MD5 (a refresh without them
        is refused, so the binding cannot be dropped). :func:`refresh_manifest` sends them.
        """
        body: dict[str, Any] = {"token": token}
        if expires is not None:
            body["expires"] = expires
        if md5s is not None:
            body["md5s"] = md5s
        return self._call("POST", "/v1/refresh", body, "refreshing the manifest")

    def tail(self, token: str, size: int) -> dict[str, Any]:
        """``{"number", "size", "url"}``: the last part's URL of a max-size upload, signed for its length."""
        return self._call("POST", "/v1/tail", {"token": token, "size": size}, "asking the relay for the last part's URL")

    def mint(self, api_token: str, body: dict[str, Any]) -> dict[str, Any]:
        """Online mint: a new manifest (as a dict). Not retried after the request may have been read."""
        return self._call("POST", "/v1/mint", body, "asking the relay to mint", bearer=api_token, idempotent=False)

    def health(self) -> bool:
        """Whether the relay answers ``GET /healthz`` with 200 (one attempt, never raises)."""
        try:
            r = self._http.request("GET", self.url + "/healthz", timeout=urllib3.Timeout(total=min(self.timeout, 10.0)))
            return r.status == 200
        except urllib3.exceptions.HTTPError:
            return False

    # -- plumbing ----------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict[str, Any], what: str, *, bearer: str | None = None,
              idempotent: bool = True, read_timeout: float | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "s3mpu"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        data = json.dumps(body).encode("utf-8")
        attempt = 0
        while True:
            try:
                timeout = urllib3.Timeout(connect=min(10.0, self.timeout), read=read_timeout or self.timeout)
                r = self._http.request(method, self.url + path, body=data, headers=headers, timeout=timeout)
            except urllib3.exceptions.HTTPError as exc:
                sent = not isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError)
                if attempt < self.retries and (idempotent or not sent):
                    self._pause(attempt, path, type(exc).__name__)
                    attempt += 1
                    continue
                raise TempFailError(f"{what}: cannot reach the relay at {self.url} ({_reason(exc)})",
                                    "Check the relay URL and the network, then retry; re-running is safe.") from None
            if r.status in RETRY_STATUS and attempt < self.retries:
                self._pause(attempt, path, f"HTTP {r.status}")
                attempt += 1
                continue
            return self._answer(r.status, r.data, what)

    def _pause(self, attempt: int, path: str, why: str) -> None:
        delay = self.backoff * (2 ** attempt) * (0.5 + random.random())
        log.debug("relay %s failed (%s); retrying in %.2fs", path, why, delay)  # path only: no token, no body
        self._sleep(delay)

    def _answer(self, status: int, raw: bytes, what: str) -> dict[str, Any]:
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = None
        if 200 <= status < 300:
            if not isinstance(doc, dict):
                raise TempFailError(f"{what}: the relay at {self.url} sent a reply that is not JSON (HTTP {status})",
                                    "Check that --relay names an s3mpu relay, not another web server.")
            return doc
        raise error_for(status, doc if isinstance(doc, dict) else {}, what, self.url)


def refresh_manifest(client: RelayClient, m: Any, expires: str | None = None) -> dict[str, Any]:
    """Refresh manifest ``m`` through its relay, sending its plan MD5s when its URLs bind them."""
    if not (m.relay and m.relay.token):
        raise UsageError("this manifest names no relay token, so the relay cannot refresh it",
                         "Ask the admin to run: s3mpu mint --refresh MANIFEST")
    md5s = [p.md5 for p in m.parts]
    return client.refresh(m.relay.token, expires, md5s=md5s if md5s and all(md5s) else None)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    return text.split(": ", 1)[-1][:160] if text else type(exc).__name__


def error_for(status: int, doc: dict[str, Any], what: str, url: str) -> S3mpuError:
    """The s3mpu error for a relay's error answer (status decides; the relay's message explains)."""
    code = str(doc.get("error") or f"HTTP {status}")
    message = str(doc.get("message") or "no details")[:500]
    detail = f"{what}: the relay answered {status} {code}: {message}"
    hint = str(doc.get("hint") or "")[:300]  # the relay knows which refusal it was: its hint fits it
    if code == "unsupported":
        return UnsupportedError(detail, hint or UNSUPPORTED_HINT)
    if status in (401, 403):
        if hint:
            return AccessDeniedError(detail, hint)
        if code == "expired":
            return AccessDeniedError(detail, "Ask the admin for a refreshed manifest (s3mpu mint --refresh).")
        return AccessDeniedError(detail, "Ask the admin for a fresh manifest or API token.")
    if status == 409:
        return PartialError(detail, "Upload the missing parts (re-run s3mpu put; it resumes), then complete again.")
    if status in (400, 413, 422):
        return DataError(detail, "The parts on the server do not match the manifest; check the file and re-run s3mpu put.")
    if status == 404:
        if code == "no_such_upload":
            return NoInputError(detail, "The upload was completed, aborted or expired; ask the admin to mint a new manifest.")
        return NoInputError(f"{what}: {url} answered 404 ({message})", "Check that --relay names an s3mpu relay.")
    if status == 429:
        return TempFailError(detail, "Complete or abort an upload in progress, or retry later.")
    if status >= 500:
        return TempFailError(detail, "Retry later; re-running is safe.")
    return S3mpuError(detail)
