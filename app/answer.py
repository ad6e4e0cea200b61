"""The answer: the one object the pipeline returns and every edge reads (/ask as JSON and as
events, /v1, `make ask` and `ragfirst ask`, `make eval`, the demo, /metrics and the request log).

Defined once, as pydantic models, so the same definition is the response schema /docs shows,
what a client (`ragfirst ask --url`, the demo) parses a response back into, and what the code
reads by attribute. Serialised only at the edge (`Answer.to_json()`), with the field names of
the HTTP contract: `text` is sent as "answer" and `timings` as "timings_ms"."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.sources import Source

ABSTAIN_ANSWER = "The documents do not contain an answer to this question."


class Citation(BaseModel):
    """A source the answer cites: `text` is exactly the document's extracted text between
    `start` and `end`; `n` is its number in the answer's [n] markers; `page` is set for PDFs."""

    n: int
    path: str
    page: int | None
    start: int
    end: int
    text: str
    score: float  # fused retrieval score, higher is better

    @classmethod
    def of(cls, source: Source) -> "Citation":
        return cls(n=source.n, path=source.path, page=source.page, start=source.start,
                   end=source.end, text=source.text, score=source.score)

    @property
    def label(self) -> str:
        """How the citation is named to a reader: `path`, or `path, page p`."""
        return self.path + (f", page {self.page}" if self.page else "")


class Timings(BaseModel):
    """Milliseconds spent on the question: making a follow-up standalone (an LLM's condensing
    call, or the model-free rewrite; 0 without history), embedding it, retrieving (beyond the
    embedding), generating the answer, and in all."""

    condense: float = 0.0
    embed: float
    retrieve: float
    generate: float
    total: float


class Answer(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    text: str = Field(alias="answer")  # invalid markers removed (unsupported sentences too,
    #                                    with RAG_DROP_UNSUPPORTED)
    citations: list[Citation]  # only the cited sources, by first citation
    abstained: bool  # nothing relevant enough was retrieved; the LLM was not called
    unsupported: list[str]  # answer sentences no cited passage supports
    invalid_citations: list[int]  # markers removed because they point at no source
    generator: str
    model: str | None
    timings: Timings = Field(alias="timings_ms")
    index_generation: int  # the index generation every citation comes from
    index_id: str = ""  # which index: a new one (rebuilt from nothing) restarts generations
    retrieval_query: str = ""  # what was searched: the question, or a follow-up's standalone form

    def to_json(self) -> dict[str, Any]:
        """The response body, in the HTTP contract's names."""
        return self.model_dump(mode="json")


def citations_json(citations: list[Citation]) -> list[dict[str, Any]]:
    """Citations as a body's JSON (an error's `sources`: a failed LLM still leaves what was
    found)."""
    return [c.model_dump(mode="json") for c in citations]
