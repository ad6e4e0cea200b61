"""The RAG system as an OpenAI-compatible model, so any OpenAI client or chat UI can use it:
`GET /v1/models`, `GET /v1/models/{id}` and `POST /v1/chat/completions` (streaming and not).
Each collection the key can read is a model: `ragfirst` is the default collection,
`ragfirst/<name>` any collection; a completion answers from the one its `model` names.

The question is the last user message; the user and assistant messages before it are the
conversation's history, as `history` is for /ask (a follow-up is searched in its standalone
form): the latest 50, each cut to 8,000 characters, their text parts only, an assistant
message without the "Sources:" list this endpoint appended to it. System (and developer)
messages are ignored: the server's own prompt decides how answers are written and cited, and
a chat UI's system prompt ("You are a helpful assistant") must not override it. Citations come in two forms (see README, "OpenAI-compatible"):
- in the text, for any chat UI: `[n]` markers, and after the answer a "Sources:" list
  (`[n] path, page p`), then the citation check's findings (sentences no cited source
  supports; markers removed because they point at no source);
- structured, for programs: `citations` (the objects /ask returns: n, path, page, start, end,
  text, score) and `ragfirst` (abstained, unsupported, generator, timings...) at the top level
  of the completion, or of the last chunk when streaming.
Sampling parameters (temperature, max_tokens...) are accepted and ignored: the server's
settings decide. Errors use OpenAI's error shape."""
from __future__ import annotations

import json
import time
import uuid
from typing import Any, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from starlette.concurrency import run_in_threadpool

from app.access import NoSuchCollection, Role, grant, readable
from app.answer import Answer
from app.api.deps import SettingsDep
from app.api.schemas import (MAX_HISTORY_TURNS, MAX_TURN_CHARS, SSE_EVENT, AskRequest,
                             check_text, errors, inline, json_int)
from app.api.streaming import Delta, Done, answer_events, event_stream, sse
from app.conversation import Turn
from ingest.collections import DEFAULT as DEFAULT_COLLECTION
from app.errors import error_body
from app.service import Question
from app.telemetry import note_answer

MODEL_ID = "ragfirst"
_SOURCES_HEADING = "\n\nSources:\n"  # what the answer's footer opens with
_CREATED = int(time.time())

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: Any = None  # a string or a list of parts: checked in _question, with its words


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, user...: ignored

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: StrictBool | None = False  # clients send explicit nulls for "the default"
    n: json_int(1, 1) | None = 1


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.param = status, code, param

    def response(self) -> JSONResponse:
        return JSONResponse(error_body("/v1/", self.status, str(self), self.code, self.param),
                            status_code=self.status)


def _model_card(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "ragfirst"}


def _model_ids(request: Request) -> list[str]:
    """`ragfirst` (the default collection) and `ragfirst/<name>` for each other collection the
    key can read (`ragfirst/default` is taken too, but not listed twice)."""
    names = [c.name for c in readable(request)]
    return ([MODEL_ID] if DEFAULT_COLLECTION in names else []) + [
        f"{MODEL_ID}/{name}" for name in names if name != DEFAULT_COLLECTION]


@router.get("/models", responses=errors(401, openai=True))
async def list_models(request: Request) -> dict:
    return {"object": "list", "data": [_model_card(m) for m in _model_ids(request)]}


@router.get("/models/{model_id:path}", responses=errors(401, 404, openai=True))
async def get_model(model_id: str, request: Request) -> JSONResponse:
    try:
        _collection(request, model_id)
    except OpenAIError as exc:
        return exc.response()
    return JSONResponse(_model_card(model_id))


def _unknown_model(model: str) -> OpenAIError:
    return OpenAIError(404, f"The model {model[:100]!r} does not exist (GET /v1/models lists "
                            f"this key's: {MODEL_ID!r} is the default collection, "
                            f"'{MODEL_ID}/<collection>' each collection).",
                       "model_not_found", "model")


def _collection(request: Request, model: str):
    """The collection a model name names, if the key can read it (app.access.grant decides:
    an unreadable collection is an unknown model, as an unknown name is)."""
    name = DEFAULT_COLLECTION if model == MODEL_ID else (
        model.removeprefix(MODEL_ID + "/") if model.startswith(MODEL_ID + "/") else None)
    if name is None:
        raise _unknown_model(model)
    try:
        return grant(request, Role.READ, name)
    except NoSuchCollection:
        raise _unknown_model(model) from None


def _question(req: ChatRequest) -> str:
    """The text of the last user message."""
    user = [m for m in req.messages if m.role == "user"]
    if not user:
        raise OpenAIError(400, "messages must hold at least one message with role 'user'",
                          param="messages")
    content = _text(user[-1].content)
    try:
        check_text(content, "the last user message")
    except ValueError as exc:
        message = "the last user message is empty" if str(exc).endswith("blank") else str(exc)
        raise OpenAIError(400, message, param="messages") from None
    try:  # /ask's own limits on a question (its length: blank ones are refused above)
        AskRequest(question=content)
    except ValidationError as exc:
        raise OpenAIError(400, f"the question ({len(content)} characters) is invalid: "
                               f"{exc.errors()[0]['msg']}", "context_length_exceeded",
                          "messages") from None
    return content


def _history(req: ChatRequest) -> tuple[Turn, ...]:
    """The user and assistant turns before the last user message (see the module's doc)."""
    last = max(i for i, m in enumerate(req.messages) if m.role == "user")
    turns = []
    for i, m in enumerate(req.messages[:last]):
        if m.role not in ("user", "assistant"):
            continue
        text = _earlier_text(m.content)
        if m.role == "assistant":
            text = text.split(_SOURCES_HEADING, 1)[0]
        try:
            turns.append(Turn(m.role, check_text(text, f"messages[{i}]")[:MAX_TURN_CHARS]))
        except ValueError as exc:
            if str(exc).endswith("blank"):
                continue  # an empty turn (a tool call's assistant message) says nothing
            raise OpenAIError(400, str(exc), param=f"messages[{i}]") from None
    return tuple(turns[-MAX_HISTORY_TURNS:])


def _earlier_text(content: Any) -> str:
    """An earlier message's text: its text parts (an image sent before is not refused)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content if isinstance(part, dict)
                         and part.get("type") == "text" and isinstance(part.get("text"), str))
    return ""


def _text(content: Any) -> str:
    """A message's text: a string, or text parts joined by lines."""
    if isinstance(content, list):
        if not all(isinstance(part, dict) for part in content):
            raise OpenAIError(400, "content parts must be objects such as "
                                   '{"type": "text", "text": "..."}', param="messages")
        kinds = {str(part.get("type")) for part in content}
        if kinds - {"text"}:
            raise OpenAIError(400, "only text content is supported, not "
                                   f"{', '.join(sorted(kinds - {'text'}))}", param="messages")
        if not all(isinstance(part.get("text", ""), str) for part in content):
            raise OpenAIError(400, "a text part's text must be a string", param="messages")
        content = "\n".join(part.get("text") or "" for part in content)
    if content is not None and not isinstance(content, str):
        raise OpenAIError(400, "content must be a string or a list of text parts",
                          param="messages")
    return content or ""


def sources_footer(answer: Answer) -> str:
    """What a chat UI shows under the answer: the "Sources:" list, then what the citation
    check found (a chat UI shows no `unsupported` field, so it is said in words)."""
    footer = ""
    if answer.citations:
        footer += _SOURCES_HEADING + "\n".join(f"[{c.n}] {c.label}" for c in answer.citations)
    if answer.unsupported:
        footer += "\n\nNot supported by the cited sources:\n" + "\n".join(
            f"- {sentence}" for sentence in answer.unsupported)
    if answer.invalid_citations:
        footer += ("\n\nRemoved citations to sources that do not exist: "
                   + ", ".join(f"[{n}]" for n in answer.invalid_citations))
    return footer


def _extensions(answer: Answer) -> dict:
    body = answer.to_json()
    return {"citations": body["citations"],
            "ragfirst": {k: body[k] for k in ("abstained", "unsupported", "invalid_citations",
                                              "generator", "model", "index_generation",
                                              "index_id", "retrieval_query", "timings_ms")}}


async def _chat_request(request: Request) -> ChatRequest:
    """The request, validated (its model is _collection's to check, its question
    _question's); raises OpenAIError for anything else."""
    try:
        raw = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise OpenAIError(400, "the request body is not valid JSON") from None
    except RecursionError:
        raise OpenAIError(400, "the request body is nested too deeply") from None
    if not isinstance(raw, dict):
        raise OpenAIError(400, "the request body must be a JSON object")
    try:
        req = ChatRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise OpenAIError(400, f"{where}: {first['msg']}", param=where or None) from None
    return req


@router.post("/chat/completions", openapi_extra={"requestBody": {
                 "required": True,
                 "content": {"application/json": {"schema": inline(ChatRequest)}}}},
             responses={200: {"description": "a chat.completion; with `stream`, "
                                             "chat.completion.chunk events, then [DONE]",
                              "content": {"application/json": {"schema": {"type": "object"}},
                                          "text/event-stream": {"schema": SSE_EVENT}}},
                        **errors(400, 401, 404, 408, 413, 502, 503, 504, openai=True)})
async def chat_completions(request: Request, settings: SettingsDep):
    try:
        req = await _chat_request(request)
        svc = _collection(request, req.model).service  # an unknown model: 404 before all else
        question, history = _question(req), _history(req)
    except OpenAIError as exc:
        return exc.response()
    q = Question(question, settings.top_k, history=history)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def noted(answer: Answer) -> Answer:
        note_answer(request, answer, question, log_content=settings.log_content)
        return answer

    # An AppError (no index, the LLM failed before its first token) is answered by the
    # app's handler, in OpenAI's shape under /v1.
    if not req.stream:
        answer = noted(await run_in_threadpool(svc.ask, q))
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created,
            "model": req.model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant",
                                     "content": answer.text + sources_footer(answer)}}],
            **_extensions(answer)})
    retrieved = await run_in_threadpool(svc.retrieve, q)
    events = await answer_events(svc, retrieved)
    return event_stream(_chunks(events, noted, completion_id, created, req.model))


def _chunks(events, noted, completion_id: str, created: int, model: str) -> Iterator[str]:
    """The answer as chat.completion.chunk events: the role, the text as it comes, the
    sources and findings as the last piece, a final chunk with the citations, [DONE]."""
    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        return sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": model, "choices": [{"index": 0, "delta": delta,
                                                    "finish_reason": finish, "logprobs": None}],
                    **extra})

    yield chunk({"role": "assistant", "content": ""})
    for event in events:
        if isinstance(event, Delta):
            yield chunk({"content": event.text})
        elif isinstance(event, Done):
            answer = noted(event.answer)
            tail = (answer.text if answer.abstained else "") + sources_footer(answer)
            if tail:
                yield chunk({"content": tail})
            yield chunk({}, "stop", **_extensions(answer))
        else:  # the OpenAI SDK raises an APIError for a chunk holding "error"
            yield sse(error_body("/v1/", event.status, event.detail))
            return
    yield sse("[DONE]")
