"""GET /collections: the collections the caller's key can read, with their size and what the
key may do in each."""
from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from app.access import principal, readable
from app.api.schemas import CollectionsResponse, errors
from app.collections import Collection

router = APIRouter(tags=["collections"])


@router.get("/collections", response_model=CollectionsResponse, responses=errors(401))
async def collections(request: Request) -> dict:
    """Each collection this key can read: its documents, chunks and generation (null before
    its first ingest commits), and `access`, the key's role in it (read, write or admin)."""
    role = principal(request).role.value
    found = readable(request)
    return {"collections": await run_in_threadpool(lambda: [_summary(c, role) for c in found])}


def _summary(c: Collection, role: str) -> dict:
    return {"name": c.name, **c.state()._asdict(), "access": role}
