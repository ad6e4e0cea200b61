"""Request models of /ask and /ingest, and the response of /documents. /ask's response is the
Answer (app.answer)."""
from __future__ import annotations

import re
from typing import Literal

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator

from app.answer import Citation
from app.retrieval import KIND_ALIASES, Mode
from ingest.collections import DEFAULT as DEFAULT_COLLECTION
from ingest.collections import NAME_PATTERN, NAME_RULE

COLLECTION_PATTERN = f"^{NAME_PATTERN}$"

# Text shows something when it holds a character other than white space, control and format
# characters (zero-width spaces and joiners, direction marks, the BOM, soft hyphens) and the
# letters that render as nothing (Hangul fillers). One pattern, so /openapi.json says exactly
# what the check does.
VISIBLE = ("[^\\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f"
           "\u2028-\u202f\u205f-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]")
_VISIBLE = re.compile(VISIBLE)


def _json_integer(value):
    """An integer as JSON has them (35 or 35.0), not a boolean or a string of digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("should be an integer (a JSON number, not a string or a boolean)")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("should be a whole number")
    return int(value)


def json_int(ge: int, le: int):
    """An integer field from ge to le, as JSON has integers (and as the schema says)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_json_integer)]


def check_text(value: str, what: str) -> str:
    """Refuse text that is not valid Unicode (a lone surrogate cannot be stored, searched or
    logged) or that shows nothing (spaces, zero-width and other invisible characters)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text (it holds a lone surrogate)") from None
    if not _VISIBLE.search(value):
        raise ValueError(f"{what} is blank")
    return value


FileType = Literal["csv", "docx", "epub", "htm", "html", "markdown", "md", "pdf", "pdf-ocr",
                   "pptx", "text", "tsv", "txt", "xlsx"]
assert set(FileType.__args__) == set(KIND_ALIASES), "a file type the filter does not know"


class AskFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, max_length=500,
                             description='a path prefix ("guides/") or glob ("guides/*.md")')
    type: Annotated[list[FileType], Field(max_length=len(KIND_ALIASES))] | FileType | None = \
        Field(None, description='file types, e.g. ["pdf", "md"] (or one, "pdf")')

    @field_validator("path")
    @classmethod
    def _can_match(cls, v: str | None) -> str | None:
        """Corpus paths are relative, with "/" between folders: a filter that no such path
        can match is a mistake to say, not a search that finds nothing."""
        if not v:
            return v  # no filter
        if "\x00" in v:
            raise ValueError("the path filter holds a NUL character")
        parts = v.replace("\\", "/").split("/")
        if v.startswith(("/", "\\")) or (len(v) > 1 and v[1] == ":"):
            raise ValueError("the path filter is relative to the corpus folder: no leading "
                             "'/', '\\' or drive")
        if ".." in parts:
            raise ValueError("the path filter cannot go up a folder ('..'): paths are "
                             "relative to the corpus folder")
        if v.count("[") > v.count("]"):
            raise ValueError("the path filter opens a '[' character class it never closes")
        return v

    @field_validator("type", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v


MAX_HISTORY_TURNS = 50
MAX_TURN_CHARS = 8000


class HistoryTurn(BaseModel):
    """One turn before the question: what the user asked or what the assistant answered."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=MAX_TURN_CHARS,
                         json_schema_extra={"pattern": VISIBLE})  # checked in _not_blank

    @field_validator("content")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        return check_text(v, "the turn's content")


def collection_field():
    """`collection`: which document set to use (GET /collections lists them)."""
    return Field(DEFAULT_COLLECTION, pattern=COLLECTION_PATTERN,
                 description=f"the collection to use ({NAME_RULE}); default "
                             f"{DEFAULT_COLLECTION!r}")


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000,
                          json_schema_extra={"pattern": VISIBLE})  # checked in _not_blank
    top_k: json_int(1, 50) | None = None
    mode: Mode = Mode.HYBRID
    filters: AskFilters | None = None
    stream: StrictBool = False  # true or false: not 0, 1 or "yes"
    collection: str = collection_field()
    history: list[HistoryTurn] = Field(
        default_factory=list, max_length=MAX_HISTORY_TURNS,
        description="the conversation's turns before `question`, oldest first (the server "
                    "keeps none: a client sends them); a follow-up is searched in its "
                    "standalone form, shown as the answer's `retrieval_query`")

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        return check_text(v, "question")


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rebuild: StrictBool = Field(False, description="re-chunk and re-embed everything (needed "
                                                   "after changing the model or chunking "
                                                   "settings)")
    collection: str = collection_field()


class IndexedDocument(BaseModel):
    path: str
    sha256: str
    size: int
    kind: str
    chunks: int
    ingested_at: str  # ISO 8601, UTC


class RefusedFile(BaseModel):
    path: str
    reason: str
    size: int | None


class DocumentsResponse(BaseModel):
    collection: str
    index_generation: int
    index_id: str  # a new id: the index was built anew, its generations start again
    documents: list[IndexedDocument]
    refused: list[RefusedFile]


class CollectionSummary(BaseModel):
    name: str
    ready: bool  # false until its first ingest commits
    documents: int | None
    chunks: int | None
    generation: int | None
    access: Literal["read", "write", "admin"]  # what the caller's key may do in it


class CollectionsResponse(BaseModel):
    collections: list[CollectionSummary]


class ErrorBody(BaseModel):
    """An error outside /v1: what went wrong and what to do; an LLM failure adds the sources
    that were retrieved."""

    detail: str
    sources: list[Citation] | None = None


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str  # "invalid_request_error" (4xx) or "server_error" (5xx)
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """An error under /v1, in OpenAI's shape (its SDKs read it)."""

    error: OpenAIErrorDetail


def errors(*statuses: int, openai: bool = False) -> dict[int, dict]:
    """The documented error responses of a route, in its path's error shape."""
    model = OpenAIErrorBody if openai else ErrorBody
    return {status: {"model": model, "description": ERRORS[status]} for status in statuses}


# One Server-Sent Event, as a schema checker reads a text/event-stream response.
SSE_EVENT = {"type": "object", "required": ["data"],
             "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}

ERRORS = {
    400: "an invalid request (a body that is not JSON, or not what the endpoint takes)",
    401: "no valid API key (RAG_API_KEY or RAG_KEYS_FILE is set)",
    403: "the key may read this collection but its role does not allow this (or /metrics "
         "without the admin role)",
    404: "no such collection, document or model, or one this key cannot read (the same answer)",
    409: "no corpus folder, an index built with other settings, or a file that exists",
    408: "a request body not all in within RAG_HTTP_BODY_TIMEOUT_S (the connection is closed)",
    413: "a request body over RAG_MAX_REQUEST_BYTES, or an upload over RAG_MAX_UPLOAD_BYTES "
         "(the connection is closed)",
    503: "no index yet (run `make ingest`), an index being rebuilt, or the disk or folder "
         "cannot be written",
    502: "the LLM backend failed (the retrieved sources in the body)",
    504: "the LLM backend did not answer in time (the retrieved sources in the body)",
}


def inline(model: type[BaseModel]) -> dict:
    """A model's JSON schema with its definitions inlined, for an OpenAPI `requestBody` given
    by hand (a route that reads its body itself, to answer in OpenAI's error shape)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node
    return resolve(schema)
