"""What retrieval hands to generation: numbered passages with where they come from."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    n: int  # the number the prompt and the answer's [n] markers use (1-based)
    path: str  # relative to the corpus folder
    page: int | None
    start: int  # character span in the document's extracted text
    end: int
    text: str  # exactly document_text[start:end]
    score: float  # fused retrieval score (higher is better)
    heading: tuple[str, ...] = ()
    similarity: float = 0.0  # cosine similarity of the passage to the question
    chunk_ids: tuple[int, ...] = ()
