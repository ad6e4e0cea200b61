"""Per request: one structured (JSON) log line and the request metrics.

The line holds the request id (the client's `X-Request-ID` if it sent a sane one, otherwise
a new one; returned in the response's `X-Request-ID`), method, route, status, duration, and for
answers the generator, timings, outcome and index generation. Never the question, the answer,
passages or keys, unless RAG_LOG_CONTENT (a debug setting) adds question and answer.

Handlers add to the line through `request_info(request)`, a dict in the ASGI scope."""
from __future__ import annotations

import json
import logging
import re
import time
import traceback
import uuid
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.routing import compile_path

from app.answer import Answer
from app.errors import error_body
from app.metrics import Metrics

log = logging.getLogger("ragfirst.request")

_INFO = "ragfirst.info"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_info(request: Request) -> dict:
    """The dict the request's log line is built from (a handler adds what it knows)."""
    return scope_info(request.scope)


def scope_info(scope) -> dict:
    """request_info, from the ASGI scope (for a middleware)."""
    return scope.setdefault(_INFO, {})


def note_answer(request: Request, answer: Answer, question: str, *, log_content: bool) -> None:
    """Record an answer: its facts on the request's log line, and in the answer metrics."""
    info = request_info(request)
    info.update(generator=answer.generator, model=answer.model, abstained=answer.abstained,
                citations=len(answer.citations), unsupported=len(answer.unsupported),
                index_generation=answer.index_generation,
                timings_ms=answer.timings.model_dump())
    request.app.state.metrics.observe_answer(answer)
    if log_content:
        info.update(question=question, answer=answer.text)


def traceback_text(exc: BaseException, with_message: bool) -> str:
    """Where a bug happened. Its message (and those of its causes) may quote what the client
    sent, so it is kept out unless RAG_LOG_CONTENT asks for it."""
    if with_message:
        return "".join(traceback.format_exception(exc))
    return ("Traceback (most recent call last):\n" + "".join(traceback.format_tb(exc.__traceback__))
            + f"{type(exc).__name__} (message withheld: it may quote the request; "
              "RAG_LOG_CONTENT=true logs it)")


class RequestTelemetry:
    """ASGI middleware, outermost: sees every request, refused ones included, and logs when
    the last byte of the response is sent (a stream: when it ends).

    `routes`: (label, path template) of every route, e.g. ("/v1/models/{model_id}", the same)
    or ("/static", "/static/{path:path}") for a mount's files."""

    def __init__(self, app, metrics: Metrics, routes: list[tuple[str, str]], *,
                 log_content: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.log_content = log_content
        self.routes = [(label, compile_path(template)[0]) for label, template in routes]

    def _route(self, scope, pristine) -> str:
        # The route's template ("/ask", "/static"), never the raw path: a label per URL
        # anyone can make up would grow the metrics without bound. The router leaves the
        # route it chose in the scope; a request refused before routing (401) or not routed
        # by it (a Mount's files) is matched here, on the path as it arrived (a Mount
        # rewrites the path).
        route = getattr(scope.get("route"), "path", None)
        if route is None:
            path = pristine["path"]
            route = next((label for label, regex in self.routes if regex.match(path)), None)
        return route or "unmatched"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = dict(scope["headers"])
        client_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = client_id if _SANE_ID.fullmatch(client_id) else uuid.uuid4().hex
        info = scope.setdefault(_INFO, {})
        pristine = dict(scope)
        status = 500  # until a response starts: a handler that raises before is a 500
        responded = done = False

        async def send_logged(message) -> None:
            nonlocal status, responded, done
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done = True
                self._finish(scope, pristine, info, request_id, status, started)

        try:
            await self.app(scope, receive, send_logged)
        except Exception as exc:
            # A bug, not an AppError (those are answered by the app): log it with the request
            # id, and answer it here so the 500 carries the id too (and OpenAI's shape).
            info["error"] = type(exc).__name__  # the message may quote a question or text
            log.error("unhandled error", extra={"fields": {
                "request_id": request_id, "exc": traceback_text(exc, self.log_content)}})
            if not responded:
                body = json.dumps(error_body(
                    scope["path"], 500, f"internal error (request id {request_id}; the "
                                        "service log has the details)")).encode()
                await send_logged({"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]})
                await send_logged({"type": "http.response.body", "body": body})
        finally:
            if not done:  # the client went away mid-stream, or the stream broke
                self._finish(scope, pristine, info, request_id, status, started,
                             incomplete=True)

    def _finish(self, scope, pristine, info: dict, request_id: str, status: int,
                started: float, incomplete: bool = False) -> None:
        seconds = time.perf_counter() - started
        route = self._route(scope, pristine)
        method = scope["method"] if scope["method"] in _METHODS else "other"  # bounded too
        self.metrics.requests.labels(route, method, str(status)).inc()
        self.metrics.latency.labels(route).observe(seconds)
        fields = {"request_id": request_id, "method": method, "route": route,
                  "status": status, "duration_ms": round(seconds * 1000, 2), **info}
        if incomplete:
            fields["incomplete"] = True
        log.info("request", extra={"fields": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, timezone.utc)
                .isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name,
                "msg": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """Every line the service writes (ours, uvicorn's) as JSON on stderr. uvicorn's access log
    is off: the request line above replaces it."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per LLM call: too chatty
    logging.captureWarnings(True)  # library warnings as JSON lines too
