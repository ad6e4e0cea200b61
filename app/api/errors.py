"""How errors become HTTP answers: every one in the error shape of its path (app.errors.error_body:
OpenAI's under /v1, `{"detail": ...}` elsewhere), with the service's own locations redacted.

- An AppError: its status, the retrieved sources for an LLM failure, `x-should-retry: false`
  on 5xx.
- A request that fails validation: 422 (400 under /v1), each problem's location and message,
  and at most a short, printable excerpt of what was sent: never a huge or unencodable echo
  (a 20 MB question, a lone surrogate, NaN).
- Starlette's own (404, 405, 413 from the body limit): the same shapes.
(The routes that answer a refusal themselves, /readyz and /v1's bad requests, use the same
error_body.)"""
from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.answer import citations_json
from app.errors import AppError, IndexNotReady, error_body
from ingest.errors import IngestError

ECHO_CHARS = 100  # of a rejected value, in a 422
MAX_PROBLEMS = 20  # a 422 lists this many problems and counts the rest: never a huge answer


def redacted(request: Request, text: str) -> str:
    redact = getattr(request.app.state, "redact", None)
    return redact(text) if redact is not None else text


def not_ready_message(request: Request, exc: IndexNotReady) -> str:
    """Why there is no index to answer from, and when there will be one."""
    collection = getattr(request.state, "collection", None)  # set by app.access.grant
    if collection is None:  # /readyz: the one collection there is without a collections file
        collections = getattr(request.app.state, "collections", None)
        collection = collections.primary if collections else None
    runner = collection.runner if collection else None
    message = str(exc)
    if runner is not None and runner.running:
        message = (f"an ingest ({runner.running}) is running; the index is ready when it "
                   f"commits (GET /readyz). {exc}")
    return redacted(request, message)


async def app_error(request: Request, exc: AppError) -> JSONResponse:
    """Every endpoint's AppError, /v1's included (in OpenAI's shape there)."""
    message = (not_ready_message(request, exc) if isinstance(exc, IndexNotReady)
               else redacted(request, str(exc)))
    body = error_body(request.url.path, exc.status, message)
    sources = getattr(exc, "sources", None)
    if sources is not None and "detail" in body:
        body["sources"] = citations_json(sources)
    # The service has retried its LLM already (RAG_LLM_RETRIES): a client retrying a 5xx
    # too (the OpenAI SDK does, twice) would multiply the wait, up to 3 x the timeout.
    headers = {"x-should-retry": "false"} if exc.status >= 500 else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _echo(value: Any) -> Any:
    """What may be shown of a rejected value: short, printable, valid JSON."""
    if isinstance(value, str):
        text = value.encode("utf-8", "replace").decode("utf-8")
        return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return f"({type(value).__name__})"  # an object or a list: named, not repeated


def _problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = exc.errors()
    problems = [{"type": e.get("type"),
                 "loc": [p if isinstance(p, int) else _echo(str(p)) for p in e.get("loc", ())],
                 "msg": _echo(str(e.get("msg", ""))), "input": _echo(e.get("input"))}
                for e in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        problems.append({"type": "too_many_errors", "loc": [],
                         "msg": f"and {len(errors) - MAX_PROBLEMS} more problems", "input": None})
    return problems


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = _problems(exc)
    path = request.url.path
    if path.startswith("/v1/"):
        first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
        loc = [str(p) for p in first["loc"]]
        where = ".".join(loc[1:] if loc[:1] == ["body"] else loc)
        return JSONResponse(error_body(path, 400, f"{where}: {first['msg']}", param=where),
                            status_code=400)
    return JSONResponse({"detail": problems}, status_code=422)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else "the request was refused"
    return JSONResponse(error_body(request.url.path, exc.status_code, message),
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def index_error(request: Request, exc: IngestError) -> JSONResponse:
    """An index fault that reached a route without becoming an AppError: a 503 saying what
    happened (redacted), never a 500."""
    return JSONResponse(error_body(request.url.path, 503, redacted(request, str(exc))),
                        status_code=503, headers={"x-should-retry": "false"})


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(IngestError, index_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
