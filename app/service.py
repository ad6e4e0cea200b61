"""The question-answering pipeline, independent of HTTP: embed -> retrieve -> abstain or
generate -> check citations -> an `Answer`. Used by the HTTP routes, `make ask` and `make eval`.

The service follows the index: before each question its IndexHolder checks (cheaply) whether
ingest has committed a new generation and, if so, opens a snapshot of it. A request reads
everything it retrieves from the one snapshot it started with, so no answer mixes two
generations.
"""
from __future__ import annotations

import copy
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from app.answer import ABSTAIN_ANSWER, Answer, Citation, Timings
from app.citations import check_answer
from app.conversation import Condenser, Turn, clean_condensed, leans_on_context, retrieval_query
from app.errors import GeneratorFailed, GeneratorTimeout, IndexNotReady
from app.generators import Generator, TextStream, build_generator
from app.index_holder import IndexHolder
from app.prompting import fit_sources
from app.retrieval import Mode, Retriever, make_filter, term_coverage, term_weights
from app.settings import Settings
from app.sources import Source
from ingest.embedders import Embedder, build_embedder
from ingest.errors import EmbedderUnavailableError
from ingest.store import ChunkFilter, IndexParams, open_reader

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Question:
    text: str
    top_k: int
    mode: Mode = Mode.HYBRID
    path: str | None = None  # a path prefix or glob
    types: Sequence[str] | None = None  # file types ("pdf", "md")
    history: Sequence[Turn] = ()  # the turns before the question, oldest first


@dataclass
class Retrieved:
    """What retrieval found for one question, before generation."""

    question: Question
    index_generation: int  # the generation every source came from
    index_id: str  # the index it belongs to
    sources: list[Source]
    abstained: bool
    started: float  # perf_counter() when the question arrived
    embed_ms: float
    retrieve_ms: float  # after the embedding, what retrieval still took
    similarity: float = -1.0  # the best source's cosine similarity to the question
    coverage: float = 1.0  # share of the question's term weight found in the sources
    query: str = ""  # what was searched: the question, or its standalone form
    deadline: float = float("inf")  # monotonic time by which the LLM must have answered
    condense_ms: float = 0.0  # making a follow-up standalone (the LLM's call, or the rewrite)


@dataclass(frozen=True)
class PipelineOptions:
    """How the pipeline retrieves, abstains, fits the prompt and checks citations. Each field
    is the setting of the same name (app.settings says what it means and its default)."""

    candidates: int
    rrf_k: int
    lexical_weight: float
    abstain_threshold: float
    min_term_coverage: float
    context_window: int
    max_answer_tokens: int
    drop_unsupported: bool
    llm_timeout_s: float
    condense_timeout_s: float

    @classmethod
    def from_settings(cls, s: Settings) -> "PipelineOptions":
        return cls(**{f: getattr(s, f) for f in cls.__dataclass_fields__})


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class RagService:
    def __init__(self, embedder: Embedder, generator: Generator, index: IndexHolder,
                 options: PipelineOptions) -> None:
        self.embedder = embedder
        self.generator = generator
        self.index = index
        self.options = options
        # BM25 and the word weights of each question, beside its embedding (two per request)
        self._lexical_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bm25")

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder | None = None,
                      generator: Generator | None = None) -> "RagService":
        """The service the settings describe (embedder and generator may be given)."""
        embedder = embedder or build_embedder(settings)
        params = IndexParams(embedder.model_id, settings.chunk_tokens, settings.chunk_overlap)
        return cls(embedder, generator or build_generator(settings, embedder),
                   IndexHolder(open_reader(settings, params)),
                   PipelineOptions.from_settings(settings))

    def with_index(self, index: IndexHolder) -> "RagService":
        """The same pipeline (embedder, generator, options, threads) over another index: a
        collection's. Closing the original closes the shared parts; close the index itself."""
        other = copy.copy(self)
        other.index = index
        return other

    def close(self) -> None:
        self.index.close()
        self._lexical_pool.shutdown(wait=False)
        self.generator.close()

    def warm_up(self) -> None:
        """Load the models now rather than on the first question. A remote embedder that does
        not answer yet is no reason not to start (like a remote LLM): questions get its error
        (503) until it does."""
        try:
            self.embedder.embed(["warm-up"])
        except EmbedderUnavailableError as exc:
            log.warning("the embedding server does not answer yet: %s", exc)
        self.generator.warm_up()
        try:
            self.index.current()
        except IndexNotReady:
            pass  # /ask answers 503 until an index exists

    def _embed_now(self, texts: list[str]) -> np.ndarray:
        """Embedding a user waits for: ahead of an ingest's batches."""
        return self.embedder.embed(texts, urgent=True)

    def retrieve(self, q: Question) -> Retrieved:
        """Embed and retrieve, then decide whether to abstain. The BM25 search and the
        question's word weights run on other threads while the question is embedded, unless
        the embedder takes every core (then the weights start after it, beside the dense
        search). A follow-up is searched in its standalone form (`_standalone`), and
        abstention judges that form: a follow-up's own words ("Who can bring it back?") are
        too few and too vague to check against the passages (measured: README,
        "Conversations")."""
        started = time.perf_counter()
        deadline = time.monotonic() + self.options.llm_timeout_s
        query = self._standalone(q, deadline)
        condensed = time.perf_counter()
        o = self.options
        # Everything read from the index comes from one snapshot: the sources carry their
        # text, so the snapshot is released before generation.
        with self.index.lease() as snapshot:
            retriever = Retriever(snapshot, o.candidates, o.rrf_k, o.lexical_weight)
            where = make_filter(q.path, q.types)
            # BM25 on another thread: beside the embedding when it is read from the store
            # (SQLite's FTS5 and PostgreSQL let go of the GIL, and at 100,000 chunks take
            # longer than the embedding); beside the dense search when it is in memory (it
            # holds the GIL, which FAISS' scan does not, and the embedding does in part).
            early = not snapshot.lexical_in_memory
            lexical = self._lexical(retriever, q, query, where) if early else None
            # The question's word weights (pure Python, ~0.5 ms) go beside the embedding
            # when it leaves a core free (ONNX: one thread per text; a remote server), else
            # beside the dense search: next to torch's OpenMP team they cost its embedding
            # 1-2 ms (9.5-10.2 against 11.3-11.6 ms p50, SciFact questions, 2 cores).
            weigh = o.min_term_coverage > 0
            weights = None
            if weigh and not self.embedder.uses_all_cores:
                weights = self._lexical_pool.submit(term_weights, query, snapshot)
            try:
                t0 = time.perf_counter()
                vector = self._embed_now([query])[0]
                t1 = time.perf_counter()
                if weigh and weights is None:
                    weights = self._lexical_pool.submit(term_weights, query, snapshot)
                if not early:
                    lexical = self._lexical(retriever, q, query, where)
                dense = (retriever.dense(vector, where) if q.mode != Mode.LEXICAL else None)
            finally:  # both read the snapshot: done before the lease ends
                hits = lexical.result() if lexical else None
                question_weights = weights.result() if weights else []
            sources = retriever.retrieve(query, vector, q.top_k, q.mode, where, hits, dense)
            generation, index_id = snapshot.generation, snapshot.index_id
        coverage = term_coverage(question_weights, sources)
        t2 = time.perf_counter()
        best = max((s.similarity for s in sources), default=-1.0)
        # Two signals: nothing similar enough was found, or the question's distinctive
        # words (a name, a product, a place) appear in none of the passages found. Nothing
        # found at all (a filter no file matches) abstains whatever the thresholds say.
        abstain = (not sources or best < o.abstain_threshold
                   or coverage < o.min_term_coverage)
        if not abstain:
            sources = self._fitted(q, sources)
        return Retrieved(q, generation, index_id, sources, abstain, started, _ms(t1 - t0),
                         _ms(t2 - t1), best, coverage, query, deadline,
                         _ms(condensed - started))

    def _lexical(self, retriever: Retriever, q: Question, query: str,
                 where: ChunkFilter | None) -> Future | None:
        """The BM25 ranking, started on another thread (none for a dense-only question)."""
        if q.mode == Mode.DENSE:
            return None
        return self._lexical_pool.submit(retriever.lexical, query, where)

    def _standalone(self, q: Question, deadline: float) -> str:
        """What to search for. A question that stands alone is searched as it is; a follow-up
        is condensed by the LLM when the generator can (within RAG_CONDENSE_TIMEOUT_S, and
        half the request's LLM time at most), else, or when that fails, rewritten without a
        model (app.conversation)."""
        if not q.history or not leans_on_context(q.text, q.history):
            return q.text
        fallback = retrieval_query(q.text, q.history)
        if not isinstance(self.generator, Condenser):
            return fallback
        self.index.current()  # no index: the 503 now, not after the LLM's condensing
        o = self.options
        budget = min(o.condense_timeout_s, o.llm_timeout_s / 2)
        try:
            reply = self.generator.condense(q.text, q.history,
                                            min(deadline, time.monotonic() + budget))
        except (GeneratorFailed, GeneratorTimeout) as exc:
            log.warning("condensing the follow-up failed (%s); searching the model-free "
                        "rewrite", type(exc).__name__)
            return fallback
        rewritten = clean_condensed(reply)
        if rewritten is None:
            log.warning("the LLM's condensed question was not usable (%d characters); "
                        "searching the model-free rewrite", len(reply))
        return rewritten or fallback

    def _fitted(self, q: Question, sources: list[Source]) -> list[Source]:
        """The generator and the citation check see the same sources: the ones whose prompt
        fits the context window (a marker to a dropped source is an invented one)."""
        o = self.options
        fitted = fit_sources(q.text, sources, o.context_window, o.max_answer_tokens, q.history)
        if not fitted:
            with sources_on_failure(sources):
                raise GeneratorFailed("the best passage does not fit RAG_CONTEXT_WINDOW="
                                      f"{o.context_window}; raise it")
        return fitted

    def checked(self, r: Retrieved, text: str, generate_s: float) -> Answer:
        """The Answer to a retrieved question: the generated `text` with its citations
        checked (or the abstention)."""
        if r.abstained:
            text, cited, unsupported, invalid = ABSTAIN_ANSWER, [], [], []
        else:
            checked = check_answer(text, r.sources, embed=self._embed_now,
                                   drop_unsupported=self.options.drop_unsupported)
            text, cited = checked.answer, checked.cited
            unsupported, invalid = checked.unsupported, checked.invalid_markers
        total = time.perf_counter() - r.started
        return Answer(text=text, citations=[Citation.of(s) for s in cited],
                      abstained=r.abstained, unsupported=unsupported, invalid_citations=invalid,
                      generator=self.generator.name, model=self.generator.model,
                      timings=Timings(condense=r.condense_ms, embed=r.embed_ms,
                                      retrieve=r.retrieve_ms,
                                      generate=_ms(generate_s), total=_ms(total)),
                      index_generation=r.index_generation, index_id=r.index_id,
                      retrieval_query=r.query or r.question.text)

    def answer(self, r: Retrieved) -> Answer:
        """Generate the answer to a retrieved question (unless it abstained) and check it. A
        GeneratorFailed carries the retrieved sources (`.sources`)."""
        if r.abstained:
            return self.checked(r, "", 0.0)
        t0 = time.perf_counter()
        with sources_on_failure(r.sources):
            text = self.generator.generate(r.question.text, r.sources, r.deadline,
                                           r.question.history)
        return self.checked(r, text, time.perf_counter() - t0)

    def ask(self, q: Question) -> Answer:
        return self.answer(self.retrieve(q))

    def stream(self, r: Retrieved) -> TextStream:
        """Text deltas of the answer to a retrieved question (nothing if it abstained).
        Closing it closes the generator's stream (a client that went away frees the model
        or the HTTP connection)."""
        if r.abstained:
            return
        deltas = self.generator.stream(r.question.text, r.sources, r.deadline,
                                       r.question.history)
        try:
            with sources_on_failure(r.sources):
                yield from deltas
        finally:
            deltas.close()


@contextmanager
def sources_on_failure(sources: list[Source]) -> Iterator[None]:
    """A GeneratorFailed leaving this block carries the retrieved sources, as citations, for
    the error body: the user still gets what was found."""
    try:
        yield
    except GeneratorFailed as exc:
        exc.sources = [Citation.of(s) for s in sources]
        raise
