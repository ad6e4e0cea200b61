"""POST /ingest (an incremental ingest now) and GET /documents (what is indexed, and what the
last ingest refused)."""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import IngesterDep, ServiceDep
from app.api.schemas import DocumentsResponse, IngestRequest, errors

router = APIRouter(tags=["documents"])


@router.post("/ingest", responses=errors(400, 401, 408, 409, 413, 503))
async def ingest(runner: IngesterDep, req: IngestRequest | None = None) -> dict:
    """Run an incremental ingest now and return its report. Waits for an ingest already
    running (the watcher's, or `make ingest` in another process) to finish first."""
    rebuild = bool(req and req.rebuild)
    report = await run_in_threadpool(lambda: runner.run("api", rebuild=rebuild))
    # `run`: callers that asked during one run share the next, and the same number
    return {**report.as_json(), "run": report.run}


@router.get("/documents", response_model=DocumentsResponse, responses=errors(401, 503))
async def documents(svc: ServiceDep) -> JSONResponse:
    """What is indexed (path, content hash, size, chunks, when ingested) and the files the
    last ingest refused, with the reason."""
    def listing() -> dict:
        with svc.index.lease() as snap:
            return {
                "index_generation": snap.generation, "index_id": snap.index_id,
                "documents": [{"path": d.path, "sha256": d.sha256, "size": d.size,
                               "kind": d.kind, "chunks": d.chunks,
                               "ingested_at": _iso(d.ingested_at)}
                              for d in snap.documents()],
                "refused": [f._asdict() for f in snap.failures()],
            }
    return JSONResponse(await run_in_threadpool(listing))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
