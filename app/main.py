"""The FastAPI app: `create_app(settings)` builds the service once in the lifespan (and starts
the corpus watcher) and serves /ask (JSON or Server-Sent Events), /ingest, /documents,
/healthz and /readyz."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from contextlib import asynccontextmanager
from typing import Iterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.errors import AppError, GeneratorFailed, IndexNotReady
from app.freshness import IngestRunner
from app.schemas import AskRequest, AskResponse, DocumentsResponse, IngestRequest
from app.service import Prepared, Question, RagService, source_json
from app.settings import Settings


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

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        body = {"detail": str(exc)}
        runner = getattr(app.state, "ingester", None)
        if isinstance(exc, IndexNotReady) and runner is not None and runner.running:
            body["detail"] = (f"an ingest ({runner.running}) is running; the index is ready "
                              f"when it commits (GET /readyz). {exc}")
        sources = getattr(exc, "sources", None)
        if sources is not None:
            body["sources"] = sources
        return JSONResponse(body, status_code=exc.status)

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
            detail = (f"an ingest ({ingest['running']}) is running; ready when it commits"
                      if ingest["running"] else str(exc))
            return JSONResponse({"ready": False, "detail": detail, "ingest": ingest},
                                status_code=503)
        return JSONResponse({"ready": True, "index_generation": snap.generation,
                             "documents": snap.document_count, "chunks": snap.chunk_count,
                             "ingest": ingest})

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
    async def ask(req: AskRequest):
        svc: RagService = app.state.service
        q = Question(req.question, req.top_k or settings.top_k, req.mode,
                     req.filters.path if req.filters else None,
                     req.filters.type if req.filters else None)
        if req.stream:
            return await _stream(svc, await run_in_threadpool(svc.prepare, q))
        # One hop to the thread pool for the whole pipeline; the body is already plain JSON
        # (AskResponse documents it), so it is sent without a second validation pass.
        return JSONResponse(await run_in_threadpool(svc.ask, q))

    return app


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


async def _stream(svc: RagService, prepared: Prepared):
    """SSE: `delta` events with text, then one `done` event with the full response body. A
    backend failure before the first delta is an HTTP error like the non-streaming one; after
    it, an `error` event (status, detail, sources) ends the stream."""
    t0 = time.perf_counter()
    deltas = svc.stream(prepared)
    # Pull the first delta before answering: a backend that fails at once gets its real
    # HTTP status (the failure carries the sources; see app_error).
    first = await run_in_threadpool(next, deltas, None)

    def events() -> Iterator[str]:
        parts = []
        try:
            piece = first
            while piece is not None:
                parts.append(piece)
                yield _sse("delta", {"text": piece})
                piece = next(deltas, None)
            body = svc.finish(prepared, "".join(parts), time.perf_counter() - t0)
            if prepared.abstained:
                yield _sse("delta", {"text": body["answer"]})
            yield _sse("done", body)
        except GeneratorFailed as exc:
            yield _sse("error", {"status": exc.status, "detail": str(exc),
                                 "sources": exc.sources})
        except Exception as exc:  # never end a stream without saying why
            yield _sse("error", {"status": 500, "detail": f"{type(exc).__name__}: {exc}",
                                 "sources": source_json(prepared.sources)})
        finally:
            deltas.close()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
