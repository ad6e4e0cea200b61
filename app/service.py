"""The question-answering pipeline, independent of HTTP: embed -> retrieve -> abstain or
generate -> check citations. Used by the /ask route and by `make ask`.

The service follows the index: before each question it checks (cheaply) whether ingest has
committed a new generation and, if so, opens a snapshot of it. A request keeps the snapshot it
started with to the end, so no answer mixes two generations.
"""
from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from app.citations import check_answer
from app.errors import GeneratorFailed, IndexNotReady
from app.generators import Generator, build_generator
from app.retrieval import Mode, Retriever, make_filter
from app.settings import Settings
from app.sources import Source
from ingest.embedders import Embedder, build_embedder
from ingest.errors import IndexNotFoundError
from ingest.index import IndexSnapshot
from ingest.store import DB_NAME, IndexParams

ABSTAIN_ANSWER = "The documents do not contain an answer to this question."


@dataclass
class Question:
    text: str
    top_k: int
    mode: Mode = "hybrid"
    path: str | None = None
    types: list[str] | None = None


@dataclass
class Prepared:
    """What retrieval produced for one question, before generation."""

    question: Question
    snapshot: IndexSnapshot
    sources: list[Source]
    abstained: bool
    timings: dict[str, float] = field(default_factory=dict)
    started: float = 0.0


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class IndexHolder:
    """The latest committed snapshot, reopened when ingest commits a new one."""

    def __init__(self, settings: Settings, expect: IndexParams) -> None:
        self.settings = settings
        self.expect = expect
        self._lock = threading.Lock()
        self._snapshot: IndexSnapshot | None = None
        self._probe: sqlite3.Connection | None = None
        self._seen_version: int | None = None

    def _changed(self) -> bool:
        """Whether another connection committed since we last looked (PRAGMA data_version)."""
        if self._probe is None:
            db = self.settings.index_dir / DB_NAME
            if not db.exists():
                return True
            self._probe = sqlite3.connect(db, check_same_thread=False)
        version = self._probe.execute("PRAGMA data_version").fetchone()[0]
        changed, self._seen_version = version != self._seen_version, version
        return changed

    def current(self) -> IndexSnapshot:
        with self._lock:
            if self._snapshot is None or self._changed():
                try:
                    latest = IndexSnapshot.open(self.settings.index_dir, expect=self.expect)
                except IndexNotFoundError as exc:
                    if self._snapshot is None:
                        raise IndexNotReady(f"{exc}") from exc
                    latest = self._snapshot
                if self._snapshot is None or latest.meta["commit"] != self._snapshot.meta["commit"]:
                    self._snapshot = latest  # in-flight requests keep the one they hold
                elif latest is not self._snapshot:
                    latest.close()
            return self._snapshot


class RagService:
    def __init__(self, settings: Settings, embedder: Embedder | None = None,
                 generator: Generator | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or build_embedder(settings)
        self.generator = generator or build_generator(settings)
        self._lexical_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bm25")
        self.index = IndexHolder(settings, IndexParams(self.embedder.model_id,
                                                       settings.chunk_tokens,
                                                       settings.chunk_overlap))

    def warm_up(self) -> None:
        """Load the models now rather than on the first question."""
        import faiss

        # One query at a time gains nothing from OpenMP threads in an exhaustive scan:
        # measured 8 ms with one thread against 19-40 ms with two at 100,000 chunks.
        faiss.omp_set_num_threads(1)
        self.embedder.embed(["warm-up"])
        self.generator.warm_up()
        try:
            self.index.current()
        except IndexNotReady:
            pass  # /ask answers 503 until an index exists

    def prepare(self, q: Question) -> Prepared:
        """Embed and retrieve. The BM25 search runs on another thread while the question is
        embedded (neither holds the GIL), so `retrieve` reports only the time after the
        embedding that retrieval still took."""
        started = time.perf_counter()
        snapshot = self.index.current()
        retriever = Retriever(snapshot, self.settings.candidates, self.settings.rrf_k)
        where = make_filter(q.path, q.types)
        lexical = (self._lexical_pool.submit(retriever.lexical, q.text, where)
                   if q.mode != "dense" else None)
        t0 = time.perf_counter()
        vector = self.embedder.embed([q.text])[0]
        t1 = time.perf_counter()
        sources = retriever.retrieve(q.text, vector, q.top_k, q.mode, where,
                                     lexical.result() if lexical else None)
        t2 = time.perf_counter()
        best = max((s.similarity for s in sources), default=-1.0)
        return Prepared(q, snapshot, sources, best < self.settings.abstain_threshold,
                        {"embed": _ms(t1 - t0), "retrieve": _ms(t2 - t1)}, started)

    def finish(self, p: Prepared, answer: str, generate_s: float) -> dict:
        """The response body: the answer with its citations checked."""
        if p.abstained:
            checked_answer, cited, unsupported, invalid = ABSTAIN_ANSWER, [], [], []
        else:
            checked = check_answer(answer, p.sources, embed=self.embedder.embed,
                                   drop_unsupported=self.settings.drop_unsupported)
            checked_answer, cited = checked.answer, checked.cited
            unsupported, invalid = checked.unsupported, checked.invalid_markers
        total = time.perf_counter() - p.started
        return {
            "answer": checked_answer,
            "citations": [{"n": s.n, "path": s.path, "page": s.page, "start": s.start,
                           "end": s.end, "text": s.text, "score": s.score} for s in cited],
            "abstained": p.abstained,
            "unsupported": unsupported,
            "invalid_citations": invalid,
            "generator": self.generator.name,
            "model": self.generator.model,
            "timings_ms": {**p.timings, "generate": _ms(generate_s), "total": _ms(total)},
            "index_generation": p.snapshot.generation,
        }

    def ask(self, q: Question) -> dict:
        """The response body. A GeneratorFailed carries the retrieved sources (`.sources`)."""
        p = self.prepare(q)
        if p.abstained:
            return self.finish(p, "", 0.0)
        t0 = time.perf_counter()
        try:
            answer = self.generator.generate(q.text, p.sources)
        except GeneratorFailed as exc:
            exc.sources = sources_body(p.sources)
            raise
        return self.finish(p, answer, time.perf_counter() - t0)

    def stream(self, p: Prepared) -> Iterator[str]:
        """Text deltas of the answer to a prepared question (nothing if it abstained)."""
        if p.abstained:
            return iter(())
        return self.generator.stream(p.question.text, p.sources)


def sources_body(sources: list[Source]) -> list[dict]:
    """Retrieved sources for an error body: the user still gets what was found."""
    return [{"n": s.n, "path": s.path, "page": s.page, "start": s.start, "end": s.end,
             "text": s.text, "score": s.score} for s in sources]
