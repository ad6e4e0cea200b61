"""The question-answering pipeline, independent of HTTP: embed -> retrieve -> abstain or
generate -> check citations. Used by the /ask route and by `make ask`.

The service follows the index: before each question it checks (cheaply) whether ingest has
committed a new generation and, if so, opens a snapshot of it. A request reads everything it
retrieves from the one snapshot it started with, so no answer mixes two generations.
"""
from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
import threading
from contextlib import contextmanager
import time
from dataclasses import dataclass, field
from typing import Iterator

from app.citations import check_answer
from app.prompting import fit_sources
from app.errors import GeneratorFailed, IndexNotReady
from app.generators import Generator, build_generator
from app.retrieval import Mode, Retriever, make_filter, term_coverage, term_weights
from app.settings import Settings
from app.sources import Source
from ingest.embedders import Embedder, build_embedder
from ingest.errors import IndexMismatchError, IndexNotFoundError
from ingest.index import IndexSnapshot
from ingest.dense import dense_path
from ingest.store import DB_NAME, IndexParams
from ingest.sync import ingest_running

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
    generation: int  # the index generation every source came from
    sources: list[Source]
    abstained: bool
    timings: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    similarity: float = -1.0  # the best source's cosine similarity to the question
    coverage: float = 1.0  # share of the question's term weight found in the sources


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _revision(meta: dict[str, str]) -> str | None:
    """What identifies a committed state (indexes from before `revision` have only `commit`)."""
    return meta.get("revision") or meta.get("commit")


class IndexHolder:
    """The latest committed snapshot, switched to when ingest commits a new generation.

    Readers take a lease (`with holder.lease() as snap`): a request keeps the snapshot it
    started with until it is done, while new requests get the new one. A replaced snapshot is
    closed when its last lease ends, which also lets SQLite checkpoint its log past it."""

    def __init__(self, settings: Settings, expect: IndexParams) -> None:
        self.settings = settings
        self.expect = expect
        self._lock = threading.Lock()
        self._snapshot: IndexSnapshot | None = None
        self._probe: sqlite3.Connection | None = None
        self._probe_inode: tuple[int, int] | None = None
        self._seen_version: int | None = None
        self._seen: dict[str, str] | None = None
        self._closed = False
        self._leases: dict[int, int] = {}  # id(snapshot) -> requests reading it
        self._retired: dict[int, IndexSnapshot] = {}  # replaced, still leased

    def _latest(self) -> dict[str, str] | None:
        """The commit and revision ingest last committed, read cheaply: PRAGMA data_version
        tells whether anything was written since we last looked (vector checkpoints too), and
        only then is meta read. A database file replaced under us (index deleted and rebuilt)
        is noticed by its inode."""
        db = self.settings.index_dir / DB_NAME
        try:
            inode = (st := db.stat()).st_dev, st.st_ino
        except FileNotFoundError:
            return None
        if self._probe is None or inode != self._probe_inode:
            if self._probe is not None:
                self._probe.close()
            self._probe = sqlite3.connect(db, check_same_thread=False)
            self._probe_inode, self._seen_version = inode, None
        version = self._probe.execute("PRAGMA data_version").fetchone()[0]
        if version != self._seen_version or self._seen is None:
            self._seen_version, self._seen = version, dict(self._probe.execute(
                "SELECT key, value FROM meta WHERE key IN ('commit', 'revision')")) or None
        return self._seen

    def _refresh(self) -> IndexSnapshot:
        """The latest snapshot (caller holds the lock)."""
        if self._closed:
            raise IndexNotReady("the service is shutting down")
        try:
            latest_meta = self._latest()
        except sqlite3.Error:
            latest_meta = None  # being created right now: keep what we have
        current = self._snapshot
        if current is not None:
            if latest_meta is None or _revision(latest_meta) == _revision(current.meta):
                return current
            commit = latest_meta.get("commit", "")
            if (commit != current.meta["commit"]
                    and not dense_path(self.settings.index_dir, commit).exists()
                    and ingest_running(self.settings.index_dir)):
                # Committed, and its FAISS file is being written right now: serve the
                # previous generation a moment longer rather than rebuild it here.
                return current
        try:
            latest = IndexSnapshot.open(self.settings.index_dir, expect=self.expect,
                                        previous=current)
        except IndexNotFoundError as exc:
            if current is None:
                raise IndexNotReady(str(exc)) from exc
            return current
        except IndexMismatchError as exc:
            raise IndexNotReady(str(exc)) from exc
        self._snapshot = latest
        if current is not None:
            if self._leases.get(id(current)):
                self._retired[id(current)] = current  # closed when its last reader is done
            else:
                current.close()
        return latest

    def current(self) -> IndexSnapshot:
        """Switch to the latest generation now (after an ingest) and return it. To read from
        it, take a lease."""
        with self._lock:
            return self._refresh()

    @contextmanager
    def lease(self) -> Iterator[IndexSnapshot]:
        with self._lock:
            snap = self._refresh()
            self._leases[id(snap)] = self._leases.get(id(snap), 0) + 1
        try:
            yield snap
        finally:
            with self._lock:
                left = self._leases[id(snap)] - 1
                if left:
                    self._leases[id(snap)] = left
                else:
                    del self._leases[id(snap)]
                    if self._retired.pop(id(snap), None) is not None:
                        snap.close()

    @property
    def open_snapshots(self) -> int:
        """Snapshots holding a read transaction: the current one and retired ones in use."""
        with self._lock:
            return (self._snapshot is not None) + len(self._retired)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for snap in [*self._retired.values(), self._snapshot]:
                if snap is not None:
                    snap.close()
            if self._probe is not None:
                self._probe.close()
            self._snapshot, self._probe, self._retired = None, None, {}


class RagService:
    def __init__(self, settings: Settings, embedder: Embedder | None = None,
                 generator: Generator | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or build_embedder(settings)
        self.generator = generator or build_generator(settings)
        # BM25 and the word weights of each question, beside its embedding (two per request)
        self._lexical_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bm25")
        self.index = IndexHolder(settings, IndexParams(self.embedder.model_id,
                                                       settings.chunk_tokens,
                                                       settings.chunk_overlap))

    def close(self) -> None:
        self.index.close()
        self._lexical_pool.shutdown(wait=False)
        close = getattr(self.generator, "close", None)
        if close is not None:
            close()

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
        """Embed and retrieve. The BM25 search and the question's word weights run on other
        threads while the question is embedded (none holds the GIL), so `retrieve` reports
        only the time after the embedding that retrieval still took."""
        started = time.perf_counter()
        # Everything read from the index comes from one snapshot: the sources carry their
        # text, so the snapshot is released before generation.
        with self.index.lease() as snapshot:
            retriever = Retriever(snapshot, self.settings.candidates, self.settings.rrf_k,
                                  self.settings.lexical_weight)
            where = make_filter(q.path, q.types)
            lexical = (self._lexical_pool.submit(retriever.lexical, q.text, where)
                       if q.mode != "dense" else None)
            weights = (self._lexical_pool.submit(term_weights, q.text, snapshot)
                       if self.settings.min_term_coverage > 0 else None)
            try:
                t0 = time.perf_counter()
                vector = self.embedder.embed([q.text])[0]
                t1 = time.perf_counter()
            finally:  # both read the snapshot: done before the lease ends
                hits = lexical.result() if lexical else None
                question_weights = weights.result() if weights else []
            sources = retriever.retrieve(q.text, vector, q.top_k, q.mode, where, hits)
            generation = snapshot.generation
        coverage = term_coverage(question_weights, sources)
        t2 = time.perf_counter()
        best = max((s.similarity for s in sources), default=-1.0)
        # Two signals: nothing similar enough was found, or the question's distinctive
        # words (a name, a product, a place) appear in none of the passages found.
        abstain = (best < self.settings.abstain_threshold
                   or coverage < self.settings.min_term_coverage)
        if not abstain:
            # The generator and the citation check see the same sources: the ones whose prompt
            # fits the context window (a marker to a dropped source is an invented one).
            fitted = fit_sources(q.text, sources, self.settings.context_window,
                                 self.settings.max_answer_tokens)
            if not fitted:
                with _sources_on_failure(sources):
                    raise GeneratorFailed("the best passage does not fit RAG_CONTEXT_WINDOW="
                                          f"{self.settings.context_window}; raise it")
            sources = fitted
        return Prepared(q, generation, sources, abstain,
                        {"embed": _ms(t1 - t0), "retrieve": _ms(t2 - t1)}, started,
                        best, coverage)

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
            "citations": source_json(cited),
            "abstained": p.abstained,
            "unsupported": unsupported,
            "invalid_citations": invalid,
            "generator": self.generator.name,
            "model": self.generator.model,
            "timings_ms": {**p.timings, "generate": _ms(generate_s), "total": _ms(total)},
            "index_generation": p.generation,
        }

    def ask(self, q: Question) -> dict:
        """The response body. A GeneratorFailed carries the retrieved sources (`.sources`)."""
        p = self.prepare(q)
        if p.abstained:
            return self.finish(p, "", 0.0)
        t0 = time.perf_counter()
        with _sources_on_failure(p.sources):
            answer = self.generator.generate(q.text, p.sources)
        return self.finish(p, answer, time.perf_counter() - t0)

    def stream(self, p: Prepared) -> Iterator[str]:
        """Text deltas of the answer to a prepared question (nothing if it abstained).
        Closing it closes the generator's stream (a client that went away frees the model
        or the HTTP connection)."""
        if p.abstained:
            return
        deltas = self.generator.stream(p.question.text, p.sources)
        try:
            with _sources_on_failure(p.sources):
                yield from deltas
        finally:
            close = getattr(deltas, "close", None)
            if close is not None:
                close()


@contextmanager
def _sources_on_failure(sources: list[Source]) -> Iterator[None]:
    """A GeneratorFailed leaving this block carries the retrieved sources for the error body."""
    try:
        yield
    except GeneratorFailed as exc:
        exc.sources = source_json(sources)
        raise


def source_json(sources: list[Source]) -> list[dict]:
    """Sources as response citations (and in error bodies: the user still gets what was
    found)."""
    return [{"n": s.n, "path": s.path, "page": s.page, "start": s.start, "end": s.end,
             "text": s.text, "score": s.score} for s in sources]
