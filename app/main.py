"""The FastAPI app: `create_app(settings)` builds the service once in the lifespan (and starts
the corpus watcher) and serves /ask (JSON or Server-Sent Events), /ingest, /documents,
/healthz, /readyz, /metrics, the web page at / and the OpenAI-compatible /v1 endpoints."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from contextlib import asynccontextmanager
from typing import Iterator

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from app import openai_compat
from app.auth import ApiKeyMiddleware
from app.errors import AppError, IndexNotReady, error_body
from app.freshness import IngestRunner
from app.metrics import CONTENT_TYPE, Metrics
from app.schemas import AskRequest, AskResponse, DocumentsResponse, IngestRequest
from app.service import Prepared, Question, RagService
from app.settings import Settings
from app.streaming import answer_events
from app.telemetry import RequestTelemetry, note_answer

WEB_DIR = Path(__file__).parent / "web"


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def create_app(settings: Settings | None = None, service: RagService | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc = app.state.service = service or RagService(settings)
        await run_in_threadpool(svc.warm_up)
        app.state.ingester = IngestRunner(svc.settings, svc.embedder, svc.index)
        if svc.settings.watch:
            app.state.ingester.start_watching()
        yield
        await run_in_threadpool(app.state.ingester.stop)
        svc.close()

    app = FastAPI(title="ragfirst", version="0.1.0", lifespan=lifespan,
                  description="Answers questions about your documents, with checked citations.")
    app.state.metrics = metrics = Metrics(lambda: _gauges(app))
    # Added last = outermost: the telemetry sees (and counts) requests the key check refuses.
    if settings.api_key is not None:
        app.add_middleware(ApiKeyMiddleware, key=settings.api_key.get_secret_value())
    app.add_middleware(RequestTelemetry, metrics=metrics, routes=app.router.routes)

    def not_ready(exc: IndexNotReady) -> str:
        runner = getattr(app.state, "ingester", None)
        if runner is not None and runner.running:
            return (f"an ingest ({runner.running}) is running; the index is ready when it "
                    f"commits (GET /readyz). {exc}")
        return str(exc)

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        """Every endpoint's AppError, /v1's included (in OpenAI's shape there)."""
        message = not_ready(exc) if isinstance(exc, IndexNotReady) else str(exc)
        body = error_body(request.url.path, exc.status, message)
        sources = getattr(exc, "sources", None)
        if sources is not None and "detail" in body:
            body["sources"] = sources
        # The service has retried its LLM already (RAG_LLM_RETRIES): a client retrying a 5xx
        # too (the OpenAI SDK does, twice) would multiply the wait, up to 3 x the timeout.
        headers = {"x-should-retry": "false"} if exc.status >= 500 else None
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready when an index is loaded: its generation and size, and the ingests' state."""
        svc: RagService = app.state.service
        ingest = app.state.ingester.status()
        try:
            snap = await run_in_threadpool(svc.index.current)
        except IndexNotReady as exc:
            return JSONResponse({"ready": False, "detail": not_ready(exc), "ingest": ingest},
                                status_code=503)
        return JSONResponse({"ready": True, "index_generation": snap.generation,
                             "documents": snap.document_count, "chunks": snap.chunk_count,
                             "ingest": ingest})

    @app.get("/metrics", response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {}},
                              "description": "Prometheus text format"}})
    async def metrics_endpoint() -> Response:
        return Response(await run_in_threadpool(metrics.render), media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    async def web_page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    openai_compat.add_routes(app)

    @app.post("/ingest", responses={409: {"description": "no corpus folder, or the index was "
                                                         "built with other settings"}})
    async def ingest(req: IngestRequest | None = None) -> dict:
        """Run an incremental ingest now and return its report. Waits for an ingest already
        running (the watcher's, or `make ingest` in another process) to finish first."""
        runner: IngestRunner = app.state.ingester
        rebuild = bool(req and req.rebuild)
        report = await run_in_threadpool(lambda: runner.run("api", rebuild=rebuild))
        # `run`: callers that asked during one run share the next, and the same number
        return {**report.as_json(), "run": report.run}

    @app.get("/documents", response_model=DocumentsResponse)
    async def documents() -> JSONResponse:
        """What is indexed (path, content hash, size, chunks, when ingested) and the files the
        last ingest refused, with the reason."""
        svc: RagService = app.state.service

        def listing() -> dict:
            with svc.index.lease() as snap:
                return {
                    "index_generation": snap.generation,
                    "documents": [{"path": d.path, "sha256": d.sha256, "size": d.size,
                                   "kind": d.kind, "chunks": d.chunks,
                                   "ingested_at": _iso(d.ingested_at)}
                                  for d in snap.documents()],
                    "refused": [{"path": p, "reason": r, "size": n}
                                for p, r, n in snap.failures()],
                }
        return JSONResponse(await run_in_threadpool(listing))

    @app.post("/ask", response_model=AskResponse,
              responses={422: {"description": "invalid question"},
                         503: {"description": "no index: run `make ingest`"},
                         502: {"description": "the LLM backend failed (sources in the body)"},
                         504: {"description": "the LLM backend timed out (sources in the body)"}})
    async def ask(req: AskRequest, request: Request):
        svc: RagService = app.state.service
        q = Question(req.question, req.top_k or settings.top_k, req.mode,
                     req.filters.path if req.filters else None,
                     req.filters.type if req.filters else None)
        if req.stream:
            prepared = await run_in_threadpool(svc.prepare, q)
            return await _stream(svc, prepared, lambda body: note_answer(
                request, body, req.question, log_content=settings.log_content))
        # One hop to the thread pool for the whole pipeline; the body is already plain JSON
        # (AskResponse documents it), so it is sent without a second validation pass.
        body = await run_in_threadpool(svc.ask, q)
        note_answer(request, body, req.question, log_content=settings.log_content)
        return JSONResponse(body)

    return app


def _gauges(app: FastAPI) -> list[tuple[str, str, str, float]]:
    """What /metrics reads rather than counts: the index being served and the ingests."""
    out = []
    svc: RagService | None = getattr(app.state, "service", None)
    runner: IngestRunner | None = getattr(app.state, "ingester", None)
    if svc is not None:
        try:
            with svc.index.lease() as snap:  # a lease: a commit cannot close it mid-read
                out += [("ragfirst_index_documents", "gauge", "documents in the served index",
                         snap.document_count),
                        ("ragfirst_index_chunks", "gauge", "chunks in the served index",
                         snap.chunk_count),
                        ("ragfirst_index_generation", "gauge",
                         "generation of the served index", snap.generation),
                        ("ragfirst_index_refused_files", "gauge",
                         "corpus files the last ingest refused (GET /documents says why)",
                         len(snap.failures()))]
            ready = True
        except IndexNotReady:
            ready = False
        out.append(("ragfirst_index_ready", "gauge", "1 when an index is loaded", ready))
    if runner is not None:
        out += [("ragfirst_ingest_runs_total", "counter",
                 "ingest runs in this process that committed (watcher, POST /ingest, start-up)",
                 runner.runs),
                ("ragfirst_ingest_failures_total", "counter",
                 "ingest runs in this process that failed", runner.failures)]
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


async def _stream(svc: RagService, prepared: Prepared, on_done):
    """SSE: `delta` events with text, then one `done` event with the full response body. A
    backend failure before the first delta is an HTTP error like the non-streaming one; after
    it, an `error` event (status, detail, sources) ends the stream."""
    events = await answer_events(svc, prepared)

    def sse() -> Iterator[str]:
        for kind, data in events:
            if kind == "delta":
                yield _sse("delta", {"text": data})
                continue
            if kind == "done":
                on_done(data)
                if data["abstained"]:
                    yield _sse("delta", {"text": data["answer"]})
            yield _sse(kind, data)

    return StreamingResponse(sse(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
