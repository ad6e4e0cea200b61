"""POST /ask: the answer as JSON, or streamed as Server-Sent Events."""
from __future__ import annotations

from typing import Iterator

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from app.access import Role, grant
from app.answer import Answer
from app.api.deps import SettingsDep
from app.api.schemas import SSE_EVENT, AskRequest, errors
from app.api.streaming import Delta, Done, Failed, answer_events, event_stream, sse
from app.conversation import Turn
from app.service import Question
from app.telemetry import note_answer

router = APIRouter(tags=["ask"])


@router.post("/ask", response_model=Answer,
             responses={200: {"description": "the answer; with `stream`, Server-Sent Events: "
                                             "`delta` events, then one `done` (or `error`)",
                              "content": {"text/event-stream": {"schema": SSE_EVENT}}},
                        **errors(400, 401, 404, 408, 413, 502, 503, 504)})
async def ask(req: AskRequest, request: Request, settings: SettingsDep):
    svc = grant(request, Role.READ, req.collection).service
    q = Question(req.question, req.top_k or settings.top_k, req.mode,
                 req.filters.path if req.filters else None,
                 req.filters.type if req.filters else None,
                 tuple(Turn(t.role, t.content) for t in req.history))

    def noted(answer: Answer) -> Answer:
        note_answer(request, answer, req.question, log_content=settings.log_content)
        return answer

    if req.stream:
        retrieved = await run_in_threadpool(svc.retrieve, q)
        return event_stream(_ask_events(await answer_events(svc, retrieved), noted))
    # One hop to the thread pool for the whole pipeline; the Answer is serialised once (the
    # response model documents it; FastAPI would validate it a second time).
    answer = noted(await run_in_threadpool(svc.ask, q))
    return Response(answer.model_dump_json(), media_type="application/json")


def _ask_events(events, noted) -> Iterator[str]:
    """`delta` events with text, then one `done` event with the whole response body. A
    backend failure before the first delta is an HTTP error like the non-streaming one; after
    it, an `error` event (status, detail, sources) ends the stream."""
    for event in events:
        if isinstance(event, Delta):
            yield sse({"text": event.text}, "delta")
        elif isinstance(event, Done):
            answer = noted(event.answer)
            if answer.abstained:  # nothing was streamed: the abstention is the text
                yield sse({"text": answer.text}, "delta")
            yield sse(answer.to_json(), "done")
        elif isinstance(event, Failed):
            yield sse(event.to_json(), "error")
