"""How an AppError raised anywhere in the service becomes an HTTP answer: its status, a body in the
error shape of the path (app.errors.error_body: OpenAI's under /v1, `{"detail": ...}` elsewhere),
the retrieved sources for an LLM failure, and `x-should-retry: false` on 5xx. (The routes that
answer a refusal themselves, /readyz and /v1's bad requests, use the same error_body.)"""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.answer import citations_json
from app.errors import AppError, IndexNotReady, error_body


def not_ready_message(request: Request, exc: IndexNotReady) -> str:
    """Why there is no index to answer from, and when there will be one."""
    runner = getattr(request.app.state, "ingester", None)
    if runner is not None and runner.running:
        return (f"an ingest ({runner.running}) is running; the index is ready when it "
                f"commits (GET /readyz). {exc}")
    return str(exc)


async def app_error(request: Request, exc: AppError) -> JSONResponse:
    """Every endpoint's AppError, /v1's included (in OpenAI's shape there)."""
    message = not_ready_message(request, exc) if isinstance(exc, IndexNotReady) else str(exc)
    body = error_body(request.url.path, exc.status, message)
    sources = getattr(exc, "sources", None)
    if sources is not None and "detail" in body:
        body["sources"] = citations_json(sources)
    # The service has retried its LLM already (RAG_LLM_RETRIES): a client retrying a 5xx
    # too (the OpenAI SDK does, twice) would multiply the wait, up to 3 x the timeout.
    headers = {"x-should-retry": "false"} if exc.status >= 500 else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, app_error)
