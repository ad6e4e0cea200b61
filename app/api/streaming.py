"""A streamed answer, for both streaming endpoints (/ask's events and /v1's chunks): the events
(`Delta`..., then `Done` with the Answer or `Failed`), and the Server-Sent Events framing and
headers they are sent with."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterator

from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.answer import Answer, Citation, citations_json
from app.errors import GeneratorFailed
from app.service import RagService, Retrieved


@dataclass(frozen=True)
class Delta:
    text: str  # the generator's text as it comes


@dataclass(frozen=True)
class Done:
    answer: Answer  # the checked answer: what to show once it arrives


@dataclass(frozen=True)
class Failed:
    status: int
    detail: str
    sources: list[Citation]  # what was retrieved: the user still gets it

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail,
                "sources": citations_json(self.sources)}


Event = Delta | Done | Failed


async def answer_events(svc: RagService, retrieved: Retrieved) -> Iterator[Event]:
    """Pulls the first delta before returning: a backend that fails at once raises its
    GeneratorFailed here, so the endpoint answers with its real HTTP status (the failure
    carries the sources). Later failures become a `Failed` event."""
    t0 = time.perf_counter()
    deltas = svc.stream(retrieved)
    first = await run_in_threadpool(next, deltas, None)

    def events() -> Iterator[Event]:
        parts = []
        try:
            piece = first
            while piece is not None:
                parts.append(piece)
                yield Delta(piece)
                piece = next(deltas, None)
            yield Done(svc.checked(retrieved, "".join(parts), time.perf_counter() - t0))
        except GeneratorFailed as exc:
            yield Failed(exc.status, str(exc), exc.sources or [])
        except Exception as exc:  # never end a stream without saying why
            yield Failed(500, f"{type(exc).__name__}: {exc}",
                         [Citation.of(s) for s in retrieved.sources])
        finally:
            deltas.close()

    return events()


def sse(data: dict[str, Any] | str, event: str | None = None) -> str:
    """One Server-Sent Event: an optional `event:` line and one `data:` line (JSON, or the
    text as it is, like OpenAI's `[DONE]`)."""
    payload = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def event_stream(lines: Iterator[str]) -> StreamingResponse:
    """A text/event-stream response that proxies pass through unbuffered."""
    return StreamingResponse(lines, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
