"""A streamed answer as events, for both streaming endpoints (/ask's SSE and /v1's chunks):
("delta", text)..., then ("done", response body) or ("error", {status, detail, sources})."""
from __future__ import annotations

import time
from typing import Iterator

from starlette.concurrency import run_in_threadpool

from app.errors import GeneratorFailed
from app.service import Prepared, RagService, source_json


async def answer_events(svc: RagService, prepared: Prepared) -> Iterator[tuple[str, object]]:
    """Pulls the first delta before returning: a backend that fails at once raises its
    GeneratorFailed here, so the endpoint answers with its real HTTP status (the failure
    carries the sources). Later failures become an ("error", ...) event."""
    t0 = time.perf_counter()
    deltas = svc.stream(prepared)
    first = await run_in_threadpool(next, deltas, None)

    def events() -> Iterator[tuple[str, object]]:
        parts = []
        try:
            piece = first
            while piece is not None:
                parts.append(piece)
                yield "delta", piece
                piece = next(deltas, None)
            yield "done", svc.finish(prepared, "".join(parts), time.perf_counter() - t0)
        except GeneratorFailed as exc:
            yield "error", {"status": exc.status, "detail": str(exc), "sources": exc.sources}
        except Exception as exc:  # never end a stream without saying why
            yield "error", {"status": 500, "detail": f"{type(exc).__name__}: {exc}",
                            "sources": source_json(prepared.sources)}
        finally:
            deltas.close()

    return events()
