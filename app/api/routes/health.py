"""GET /healthz (alive), /readyz (an index is loaded: its generation and size, and the
ingests' state) and /metrics (Prometheus)."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.access import Role, probed, require
from app.api.deps import MetricsDep
from app.api.errors import not_ready_message, redacted
from app.api.schemas import errors
from app.errors import IndexNotReady

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready: no index yet, or it is "
                                                     "being rebuilt (the reason in `detail`)"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready when an index is loaded: its id, generation and size, and the ingests' state.
    Needs no key (for load balancers), so it says what state the service is in, never where
    its files are. With a collections file it names none of them (see _collections_ready)."""
    collections = probed(request)
    if request.app.state.settings.collections_file is not None:
        return await run_in_threadpool(_collections_ready, collections)
    svc, runner = collections.primary.service, collections.primary.runner  # `default`
    ingest = runner.status()
    if ingest["last"] and "error" in ingest["last"]:
        ingest["last"] = {**ingest["last"], "error": redacted(request, ingest["last"]["error"])}
    try:
        snap = await run_in_threadpool(svc.index.current)
    except IndexNotReady as exc:
        return JSONResponse({"ready": False, "detail": not_ready_message(request, exc),
                             "ingest": ingest}, status_code=503)
    return JSONResponse({"ready": True, "index_id": snap.index_id,
                         "index_generation": snap.generation, "documents": snap.document_count,
                         "chunks": snap.chunk_count, "ingest": ingest,
                         "lexical_index": _lexical_state(request.app.state.settings, snap)})


def _lexical_state(settings, snap) -> str:
    """How BM25 is ranked now: "memory" (the SQLite store's in-memory index of this commit),
    "building" (FTS5 answers while it is built), "fts5" (RAG_LEXICAL_INDEX=fts5), "postgres"."""
    if settings.store != "sqlite":
        return settings.store
    if settings.lexical_index == "fts5":
        return "fts5"
    return "memory" if snap.lexical_in_memory else "building"


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}},
                             "description": "Prometheus text format (or OpenMetrics, when "
                                            "the scraper asks for it)"}, **errors(401, 403)})
async def metrics(request: Request, m: MetricsDep) -> Response:
    require(request, Role.ADMIN)  # every collection's figures
    body, content_type = await run_in_threadpool(m.render, request.headers.get("accept"))
    return Response(body, media_type=content_type)


def _collections_ready(collections) -> JSONResponse:
    """Readiness over several collections, in counts only (their names are for keys that can
    read them): 200 while at least one collection can answer, so a collection without an
    index yet does not take the others out of a load balancer; `ready` is true when all can."""
    ready = sum(c.state().ready for c in collections)
    states = [c.runner.status() for c in collections]
    ingest = {"watching": sum(s["watching"] for s in states),
              "running": sum(s["running"] is not None for s in states),
              "runs": sum(s["runs"] for s in states),
              "failures": sum(s["failures"] for s in states),
              "retrying": sum(s["retrying"] for s in states)}
    return JSONResponse({"ready": ready == len(collections), "collections": len(collections),
                         "ready_collections": ready, "ingest": ingest},
                        status_code=200 if ready else 503)
