"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidates fused by reciprocal rank
fusion, overlapping chunks of one document merged into one passage, top k kept.

Reciprocal rank fusion (Cormack, Clarke & Buettcher, 2009): score(c) = sum over rankings of
1 / (rrf_k + rank). It needs no score calibration between BM25 and cosine similarity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Sequence

import numpy as np

from app.sources import Source
from app.text import STOP_WORDS, WORD, terms
from ingest.store.reader import Snapshot
from ingest.store.records import ChunkFilter, ChunkRecord


class Mode(StrEnum):
    """Which rankings retrieval uses: both, fused (the default), or one of them (for
    evaluation and debugging)."""

    HYBRID = "hybrid"
    DENSE = "dense"
    LEXICAL = "lexical"


# The file types filters.type accepts, and the document kinds each stands for ("pdf" takes in
# the PDFs read by OCR too).
KIND_ALIASES: dict[str, tuple[str, ...]] = {
    "md": ("markdown",), "markdown": ("markdown",), "txt": ("text",), "text": ("text",),
    "html": ("html",), "htm": ("html",), "pdf": ("pdf", "pdf-ocr"), "pdf-ocr": ("pdf-ocr",),
    "docx": ("docx",), "pptx": ("pptx",), "xlsx": ("xlsx",), "csv": ("csv",), "tsv": ("csv",),
    "epub": ("epub",)}


def make_filter(path: str | None, types: Sequence[str] | None) -> ChunkFilter | None:
    """A path prefix ("guides/") or glob ("guides/*.md") and file types ("pdf", ".md")."""
    glob = None
    if path:
        glob = path if any(ch in path for ch in "*?[") else path.rstrip("*") + "*"
    kinds = tuple(sorted({kind for t in types for kind in KIND_ALIASES[t.lower().lstrip(".")]})
                  ) if types else None
    return ChunkFilter(glob, kinds) if (glob or kinds) else None


def rrf(rankings: Sequence[Sequence[int]], k: int,
        weights: Sequence[float] | None = None) -> dict[int, float]:
    """score(c) = sum over rankings of weight / (k + rank of c)."""
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings)):
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
    return scores


def fuse(rankings: Sequence[Sequence[int]], k: int,
         weights: Sequence[float] | None = None) -> list[tuple[int, float]]:
    """The fused ranking: (chunk id, RRF score), best first; ties go to the smaller id."""
    return sorted(rrf(rankings, k, weights).items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass
class _Passage:
    path: str
    start: int
    end: int
    page: int | None
    heading: tuple[str, ...]
    score: float
    chunk_ids: list[int]


def merge_overlapping(ranked: Sequence[tuple[ChunkRecord, float]]) -> list[_Passage]:
    """Chunks of one document whose spans overlap or touch become one passage (span union,
    best score); a chunk whose text repeats a better-ranked one's is dropped. Best first.
    A chunk that bridges two passages of its document joins them into the better-ranked one,
    so no two passages returned overlap."""
    passages: list[_Passage] = []
    seen_text: set[str] = set()
    for chunk, score in ranked:
        if chunk.text in seen_text:
            continue
        seen_text.add(chunk.text)
        hits = [p for p in passages if p.path == chunk.path and p.page == chunk.page
                and chunk.start <= p.end and p.start <= chunk.end]
        if not hits:
            passages.append(_Passage(chunk.path, chunk.start, chunk.end, chunk.page,
                                     chunk.heading, score, [chunk.id]))
            continue
        p = hits[0]  # the best-ranked passage it touches absorbs the chunk and the others
        p.start, p.end = min(p.start, chunk.start), max(p.end, chunk.end)
        p.chunk_ids.append(chunk.id)
        for other in hits[1:]:
            p.start, p.end = min(p.start, other.start), max(p.end, other.end)
            p.chunk_ids.extend(other.chunk_ids)
        if len(hits) > 1:
            absorbed = {id(other) for other in hits[1:]}
            passages = [q for q in passages if id(q) not in absorbed]
    return passages


class Retriever:
    def __init__(self, snapshot: Snapshot, candidates: int = 50, rrf_k: int = 60,
                 lexical_weight: float = 1.0) -> None:
        self.snapshot = snapshot
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.lexical_weight = lexical_weight

    def lexical(self, question: str, where: ChunkFilter | None = None) -> list[int]:
        """The BM25 ranking (chunk ids). Needs no query vector, so the service runs it while
        the question is being embedded."""
        # Stop words match nearly every chunk: BM25 gives them ~0 weight anyway, but the
        # search would still score every chunk that contains "the".
        words = [w for w in WORD.findall(question) if w.lower() not in STOP_WORDS]
        return [i for i, _ in self.snapshot.search_lexical(" ".join(words) or question,
                                                           self.candidates, where)]

    def dense(self, query_vector: np.ndarray, where: ChunkFilter | None = None) -> list[int]:
        """The FAISS ranking (chunk ids)."""
        return [i for i, _ in self.snapshot.search_dense(query_vector, self.candidates, where)]

    def retrieve(self, question: str, query_vector: np.ndarray, k: int, mode: Mode = Mode.HYBRID,
                 where: ChunkFilter | None = None, lexical: list[int] | None = None,
                 dense: list[int] | None = None) -> list[Source]:
        """The top k passages. `lexical` and `dense` are the BM25 and FAISS rankings if
        already computed."""
        snap = self.snapshot
        rankings, weights = [], []
        if mode in (Mode.HYBRID, Mode.DENSE):
            rankings.append(dense if dense is not None else self.dense(query_vector, where))
            weights.append(1.0)
        if mode in (Mode.HYBRID, Mode.LEXICAL):
            rankings.append(lexical if lexical is not None else self.lexical(question, where))
            weights.append(self.lexical_weight)
        fused = fuse(rankings, self.rrf_k, weights)
        # Merging can fold several chunks into one passage: look a little deeper than k.
        top = fused[: k * 3]
        records = snap.chunks([i for i, _ in top])
        by_id = {r.id: r for r in records}
        passages = merge_overlapping([(by_id[i], s) for i, s in top if i in by_id])[:k]
        sims = snap.similarities(query_vector, [c for p in passages for c in p.chunk_ids])
        sources, pos = [], 0
        for n, p in enumerate(passages, start=1):
            best = max(sims[pos:pos + len(p.chunk_ids)])
            pos += len(p.chunk_ids)
            text = (by_id[p.chunk_ids[0]].text if len(p.chunk_ids) == 1
                    else snap.document_span(p.path, p.start, p.end))
            sources.append(Source(n, p.path, p.page, p.start, p.end, text, round(p.score, 6),
                                  p.heading, round(best, 4), tuple(p.chunk_ids)))
        return sources


def term_weights(question: str, snapshot: Snapshot) -> list[tuple[str, float]]:
    """(stem, inverse document frequency in the index) of each distinct content word of the
    question. Needs no query vector: the service computes it while the question is embedded."""
    n = max(snapshot.chunk_count, 1)
    weights = []
    for word in dict.fromkeys(w.lower() for w in WORD.findall(question)):
        stemmed = terms(word)
        if stemmed:  # not a stop word
            weights.append((stemmed[0], math.log(1 + n / (snapshot.doc_freq(word) + 1))))
    return weights


def term_coverage(weights: Sequence[tuple[str, float]], sources: Sequence[Source]) -> float:
    """The share of the question's word weight (`term_weights`) found in the sources. A
    question about something the corpus never mentions ("our office in Tokyo") scores low
    even when its other words retrieve similar passages."""
    found = {t for s in sources for t in terms(s.text)}
    total = sum(w for _, w in weights)
    covered = sum(w for t, w in weights if t in found)
    return covered / total if total else 1.0
