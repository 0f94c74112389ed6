"""The relay's HTTP layer (Flask): routing, JSON in and out, limits, request ids, access log.

All logic lives in :mod:`s3mpu.relay.service`; this module only turns HTTP into calls and
answers into JSON. Every answer is JSON, errors included (404, 405, 413, 415, 500, OPTIONS:
never an HTML page), and every request leaves exactly one structured access-log line that names
the path but never the query string, a token, a URL signature or a secret. JSON endpoints take
only ``Content-Type: application/json`` (a browser cannot send that cross-site without a CORS
preflight, which the relay never grants), and request data reaching a log line is escaped.
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
from s3mpu.errors import ConfigError, S3mpuError, UsageError
from s3mpu.relay.config import RelayConfig
from s3mpu.relay.service import MediaTypeError, RelayService, http_error, scrub

access_log = logging.getLogger("s3mpu.relay.access")
log = logging.getLogger("s3mpu.relay")
_RID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
               429: "too_many_requests", 431: "request_header_fields_too_large"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_log(text: str) -> str:
    """CR, LF and every other control character as a visible escape: request data cannot forge log lines."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                        text)


class EscapeFilter(logging.Filter):
    """Formats a record's message once with its arguments escaped (keys and names come from requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            try:
                record.msg = str(record.msg) % tuple(escape_log(a) if isinstance(a, str) else a for a in args)
                record.args = ()
            except (TypeError, ValueError):
                pass
        record.msg = escape_log(str(record.msg))
        return True


def _install_log_filter() -> None:
    if not any(isinstance(f, EscapeFilter) for f in log.filters):
        log.addFilter(EscapeFilter())


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


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
    from s3mpu.relay.ops import build as build_ops

    ops = build_ops(config)  # events (audit, metrics, webhooks), live tokens file, readiness
    service = RelayService(config)
    _install_log_filter()
    app = Flask("s3mpu.relay")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body
    app.config["MAX_FORM_MEMORY_SIZE"] = config.max_body
    app.extensions["s3mpu.relay"] = service
    app.extensions["s3mpu.relay.ops"] = ops

    @app.before_request
    def _start() -> Response | None:
        g.t0 = time.monotonic()
        incoming = request.headers.get("X-Request-Id", "")
        g.rid = incoming if _RID_RE.match(incoming) else uuid.uuid4().hex
        g.log = {}
        ops.begin(g.rid, _rule(), request.remote_addr)
        if request.method == "OPTIONS":  # no CORS: a browser on another site gets no permission from here
            rule = request.url_rule
            if rule is None:
                return error_response(404, "not_found", "no such endpoint on this relay")
            allowed = sorted(m for m in (rule.methods or set()) if m not in ("OPTIONS", "HEAD"))
            resp = _json(200, {"allow": allowed})
            resp.headers["Allow"] = ", ".join(allowed)
            return resp
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
        ops.finish(_rule(), request.method, resp.status_code, time.monotonic() - t0)
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
            ops.refused(413, "payload_too_large", message)
        resp = error_response(status, _HTTP_CODES.get(status, "http_error"), message)
        allowed = getattr(exc, "valid_methods", None)  # only werkzeug's MethodNotAllowed has it
        if status == 405 and allowed:
            resp.headers["Allow"] = ", ".join(allowed)
        return resp

    @app.errorhandler(S3mpuError)
    def _s3mpu_error(exc: S3mpuError) -> Response:
        return s3mpu_error_response(exc)

    def s3mpu_error_response(exc: S3mpuError, seed: bool = False) -> Response:
        status, code = http_error(exc)
        if seed and status in (409, 422):  # the seed's client knows one failure: 422
            status = 422
        g.log["error"] = code
        ops.refused(status, code, exc.message)
        rid = getattr(g, "rid", "-")
        extra = {"status_code": status} if seed else {}
        if status >= 500:
            log.warning("rid=%s %s: %s", rid, code, scrub(exc.message, config.all_secrets))
        if status == 502:  # the details (endpoint, path, S3's words) stay in the log
            return error_response(status, code, "S3 is unreachable from the relay, or failed",
                                  f"Try again later; if it persists, quote request id {rid} to the relay's admin.",
                                  **extra)
        if status == 500:
            return error_response(status, code, "the relay is misconfigured; the details are in its log",
                                  f"Quote request id {rid} to the relay's admin.", **extra)
        return error_response(status, code, exc.message, exc.hint, **extra)

    @app.errorhandler(RecursionError)
    def _too_deep(exc: RecursionError) -> Response:
        g.log["error"] = "bad_request"
        return error_response(400, "bad_request", "the request is nested too deeply")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("rid=%s unexpected %s: %s", getattr(g, "rid", "-"), type(exc).__name__,
                  scrub(str(exc), config.all_secrets))
        g.log["error"] = "internal_error"
        return error_response(500, "internal_error", "the relay failed unexpectedly; the error is in its log",
                              f"Quote request id {getattr(g, 'rid', '-')} to the relay's admin.")

    def body() -> dict[str, Any]:
        if request.mimetype != "application/json":
            raise MediaTypeError("this endpoint takes a JSON body with Content-Type: application/json",
                                 "Send the header Content-Type: application/json.")
        try:  # the body is already bounded by max_body (MAX_CONTENT_LENGTH)
            data = json.loads(request.get_data(cache=False), parse_float=_finite, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise UsageError('the request body must be a JSON object, e.g. {"token": "..."}')
        return data

    def relay_url() -> str:
        """The relay's own URL for manifests: configured, or where it listens; never the Host header."""
        url = config.public_url or config.listen_url
        if not url:
            raise ConfigError("the relay does not know its public URL", "Start it with --public-url URL.")
        return url

    def answer(result: tuple[int, dict[str, Any]]) -> Response:
        status, data = result
        for k in ("bucket", "key", "upload_id"):
            if k in data and isinstance(data[k], str):
                g.log[k] = data[k][:200]
        return _json(status, data)

    @app.get("/healthz")
    def healthz() -> Response:
        return _json(200, {"status": "ok"})

    ops.routes(app, _json)

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
                return s3mpu_error_response(exc, seed=True)

    return app


def _rule() -> str:
    """The endpoint as routed (``/v1/complete``), never the raw path: a bounded metric label."""
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def _bearer() -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
