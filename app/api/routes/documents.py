"""POST /ingest (an incremental ingest now) and GET /documents (what is indexed, and what the
last ingest refused)."""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.access import Role, grant
from app.api.schemas import (COLLECTION_PATTERN, DEFAULT_COLLECTION, DocumentsResponse,
                             IngestRequest, errors)
from app.collections import Collection

router = APIRouter(tags=["documents"])


@router.post("/ingest", responses=errors(400, 401, 403, 404, 408, 409, 413, 503))
async def ingest(request: Request, req: IngestRequest | None = None) -> dict:
    """Run an incremental ingest of a collection now (the write role) and return its report.
    Waits for an ingest already running (the watcher's, or `make ingest` in another process)
    to finish first."""
    req = req or IngestRequest()
    runner = grant(request, Role.WRITE, req.collection).runner
    report = await run_in_threadpool(lambda: runner.run("api", rebuild=req.rebuild))
    # `run`: callers that asked during one run share the next, and the same number
    return {**report.as_json(), "run": report.run}


@router.get("/documents", response_model=DocumentsResponse, responses=errors(401, 404, 503))
async def documents(request: Request, collection: str = Query(
        DEFAULT_COLLECTION, pattern=COLLECTION_PATTERN,
        description="the collection (GET /collections lists them)")) -> JSONResponse:
    """What a collection holds (path, content hash, size, chunks, when ingested) and the files
    its last ingest refused, with the reason."""
    found = grant(request, Role.READ, collection)
    return JSONResponse(await run_in_threadpool(listing, found))


def listing(collection: Collection) -> dict:
    """GET /documents' body for one collection."""
    with collection.service.index.lease() as snap:
        return {"collection": collection.name,
                "index_generation": snap.generation, "index_id": snap.index_id,
                "documents": [{"path": d.path, "sha256": d.sha256, "size": d.size,
                               "kind": d.kind, "chunks": d.chunks,
                               "ingested_at": _iso(d.ingested_at)}
                              for d in snap.documents()],
                "refused": [f._asdict() for f in snap.failures()]}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
