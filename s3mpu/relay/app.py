"""The relay's HTTP layer (Flask): routing, JSON in and out, limits, request ids, access log.

All logic lives in :mod:`s3mpu.relay.service`; this module only turns HTTP into calls and
answers into JSON. Every answer is JSON, errors included (404, 405, 413, 500: never an HTML
page), and every request leaves exactly one structured access-log line that names the path
but never the query string, a token, a URL signature or a secret.
"""
from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from s3mpu.config import Settings
from s3mpu.errors import S3mpuError, UsageError
from s3mpu.relay.config import RelayConfig
from s3mpu.relay.service import RelayService, http_error, scrub

access_log = logging.getLogger("s3mpu.relay.access")
log = logging.getLogger("s3mpu.relay")
_RID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
               429: "too_many_requests"}


def _json(status: int, data: dict[str, Any]) -> Response:
    return Response(json.dumps(data, separators=(",", ":")) + "\n", status=status, mimetype="application/json")


def error_response(status: int, code: str, message: str, hint: str = "", **extra: Any) -> Response:
    body: dict[str, Any] = {"error": code, "message": message, **extra}
    if hint:
        body["hint"] = hint
    rid = getattr(g, "rid", None)
    if rid:
        body["request_id"] = rid
    return _json(status, body)


def create_app(config: RelayConfig | Settings | None = None, **options: Any) -> Flask:
    """A relay app over ``config`` (a :class:`RelayConfig`, or Settings plus RelayConfig options)."""
    if config is None or isinstance(config, Settings):
        config = RelayConfig(settings=config or Settings(), **options)
    elif options:
        raise TypeError("pass options either in RelayConfig or as keywords with Settings, not both")
    service = RelayService(config)
    app = Flask("s3mpu.relay")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body
    app.config["MAX_FORM_MEMORY_SIZE"] = config.max_body
    app.extensions["s3mpu.relay"] = service

    @app.before_request
    def _start() -> Response | None:
        g.t0 = time.monotonic()
        incoming = request.headers.get("X-Request-Id", "")
        g.rid = incoming if _RID_RE.match(incoming) else uuid.uuid4().hex
        g.log = {}
        if request.content_length is not None and request.content_length > config.max_body:
            return error_response(413, "payload_too_large",
                                  f"request body of {request.content_length} bytes exceeds the relay's limit of "
                                  f"{config.max_body}")
        return None

    @app.after_request
    def _finish(resp: Response) -> Response:
        resp.headers["X-Request-Id"] = getattr(g, "rid", "-")
        resp.headers["Cache-Control"] = "no-store"
        t0 = getattr(g, "t0", time.monotonic())
        line = {"rid": getattr(g, "rid", "-"), "remote": request.remote_addr, "method": request.method,
                "path": scrub(request.path[:200]), "status": resp.status_code,
                "in": request.content_length or 0, "out": resp.calculate_content_length() or 0,
                "ms": round((time.monotonic() - t0) * 1000, 1), **getattr(g, "log", {})}
        access_log.info(json.dumps(line, separators=(",", ":")))
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = f"request body exceeds the relay's limit of {config.max_body} bytes"
        resp = error_response(status, _HTTP_CODES.get(status, "http_error"), message)
        allowed = getattr(exc, "valid_methods", None)  # only werkzeug's MethodNotAllowed has it
        if status == 405 and allowed:
            resp.headers["Allow"] = ", ".join(allowed)
        return resp

    @app.errorhandler(S3mpuError)
    def _s3mpu_error(exc: S3mpuError) -> Response:
        status, code = http_error(exc)
        g.log["error"] = code
        if status >= 500:
            log.warning("rid=%s %s: %s", getattr(g, "rid", "-"), code, scrub(exc.message, config.all_secrets))
        return error_response(status, code, exc.message, exc.hint)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("rid=%s unexpected %s: %s", getattr(g, "rid", "-"), type(exc).__name__,
                  scrub(str(exc), config.all_secrets))
        g.log["error"] = "internal_error"
        return error_response(500, "internal_error", "the relay failed unexpectedly; the error is in its log",
                              f"Quote request id {getattr(g, 'rid', '-')} to the relay's admin.")

    def body() -> dict[str, Any]:
        data = request.get_json(force=True, silent=True)
        if not isinstance(data, dict):
            raise UsageError('the request body must be a JSON object, e.g. {"token": "..."}')
        return data

    def relay_url() -> str:
        return config.public_url or request.host_url.rstrip("/")

    def answer(result: tuple[int, dict[str, Any]]) -> Response:
        status, data = result
        for k in ("bucket", "key", "upload_id"):
            if k in data and isinstance(data[k], str):
                g.log[k] = data[k][:200]
        return _json(status, data)

    @app.get("/healthz")
    def healthz() -> Response:
        return _json(200, {"status": "ok"})

    @app.post("/v1/complete")
    def complete() -> Response:
        return answer(service.complete(body()))

    @app.post("/v1/status")
    def status() -> Response:
        return answer(service.status(body()))

    @app.post("/v1/abort")
    def abort() -> Response:
        return answer(service.abort(body()))

    @app.post("/v1/refresh")
    def refresh() -> Response:
        return answer(service.refresh(body(), relay_url()))

    @app.post("/v1/tail")
    def tail() -> Response:
        return answer(service.tail(body()))

    @app.post("/v1/mint")
    def mint() -> Response:
        return answer(service.mint(body(), _bearer(), relay_url()))

    if config.seed_bucket:
        from s3mpu.relay.seed import SeedApi

        seed = SeedApi(config, service)

        @app.post("/presign")
        def seed_presign() -> Response:
            return answer(seed.presign(request.form, _bearer()))

        @app.post("/complete")
        def seed_complete() -> Response:
            try:
                return answer(seed.complete(request.form, _bearer()))
            except S3mpuError as exc:
                status, code = http_error(exc)
                if status in (404, 409, 422):  # the seed's client knows one failure: 422
                    status = 422
                g.log["error"] = code
                return error_response(status, code, exc.message, exc.hint, status_code=status)

    return app


def _bearer() -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
