"""/metrics, with prometheus_client: a registry per app holding the counters and histograms the
requests update, and a collector that reads the served index and the ingests at scrape time.

The Prometheus text format (or OpenMetrics, when the scraper's Accept header asks for it) is
prometheus_client's own exposition, content type included."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from app.answer import Answer
from app.errors import IndexNotReady

if TYPE_CHECKING:
    from app.collections import Collections
    from app.service import RagService

# Seconds: from a 5 ms lexical answer to a minute-long CPU LLM.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# No `_created` series beside each counter and histogram: they double the output and no
# dashboard of ours reads them. (A process-wide switch of prometheus_client.)
disable_created_metrics()


class Metrics:
    """Everything /metrics shows, in a registry of its own (one per app: two apps in one
    process, as in the tests, count apart)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("ragfirst_http_requests", "HTTP requests by route, method and "
                                "status", ("route", "method", "status"), registry=r)
        self.latency = Histogram("ragfirst_http_request_duration_seconds", "HTTP request time "
                                 "by route, until the last byte is sent", ("route",),
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.retrieval_seconds = Histogram(
            "ragfirst_retrieval_seconds", "question embedding and retrieval time per answer "
            "(abstentions included)", buckets=LATENCY_BUCKETS, registry=r)
        self.generate_seconds = Histogram(
            "ragfirst_generation_seconds", "generation time per answer, by generator "
            "(abstentions: none)", ("generator",), buckets=LATENCY_BUCKETS, registry=r)
        self.answers = Counter("ragfirst_answers", "answers by outcome (answered or abstained)",
                               ("outcome",), registry=r)
        self.unsupported = Counter("ragfirst_unsupported_sentences",
                                   "answer sentences no cited passage supports", registry=r)
        for outcome in ("answered", "abstained"):  # 0, not absent, before the first answer
            self.answers.labels(outcome)

    def watch(self, collections: Callable[[], "Collections | None"]) -> None:
        """Show the served indexes and the ingests (read at each scrape; the collections may
        not be built yet, or any more): the first collection's unlabelled, as before
        collections, and every collection's by its `collection` label."""
        self.registry.register(_ServingCollector(collections))
        self.registry.register(_CollectionsCollector(collections))

    def observe_answer(self, answer: Answer) -> None:
        t = answer.timings
        self.retrieval_seconds.observe((t.embed + t.retrieve) / 1000)
        self.answers.labels("abstained" if answer.abstained else "answered").inc()
        if not answer.abstained:
            self.generate_seconds.labels(answer.generator).observe(t.generate / 1000)
        if answer.unsupported:
            self.unsupported.inc(len(answer.unsupported))

    def sample(self, name: str, **labels: str) -> float | None:
        """One sample's value (None if absent), e.g. sample("ragfirst_answers_total",
        outcome="answered")."""
        return self.registry.get_sample_value(name, labels)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition the scraper asked for (Accept header), and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _ServingCollector:
    """Gauges of the index being served, and the ingests' counters, read at scrape time."""

    def __init__(self, collections: Callable[[], "Collections | None"]) -> None:
        self._collections = collections

    def collect(self) -> Iterator[Metric]:
        found = self._collections()
        if found is None:
            return
        svc, runner = found.primary.service, found.primary.runner
        yield from self._index(svc)
        if runner is not None:
            yield CounterMetricFamily(
                "ragfirst_ingest_runs", "ingest runs in this process that committed (watcher, "
                "POST /ingest, start-up)", value=runner.runs)
            yield CounterMetricFamily("ragfirst_ingest_failures",
                                      "ingest runs in this process that failed",
                                      value=runner.failures)

    @staticmethod
    def _index(svc: "RagService") -> list[Metric]:
        try:
            with svc.index.lease() as snap:  # a lease: a commit cannot close it mid-read
                values = [("documents", "documents in the served index", snap.document_count),
                          ("chunks", "chunks in the served index", snap.chunk_count),
                          ("generation", "generation of the served index", snap.generation),
                          ("refused_files", "corpus files the last ingest refused (GET "
                           "/documents says why)", len(snap.failures()))]
            ready = 1
        except IndexNotReady:
            values, ready = [], 0
        values.append(("ready", "1 when an index is loaded", ready))
        families = [GaugeMetricFamily(f"ragfirst_index_{name}", help, value=value)
                    for name, help, value in values]
        storage = GaugeMetricFamily("ragfirst_index_storage_bytes", "bytes the index takes "
                                    "on disk, by part (the write-ahead log is `wal`)",
                                    labels=["part"])
        for part, size in svc.index.storage().items():
            storage.add_metric([part], size)
        return [*families, storage]


class _CollectionsCollector:
    """Each collection's size and state, labelled by its name (/metrics is the admin's)."""

    _GAUGES = (("documents", "documents in the collection's index"),
               ("chunks", "chunks in the collection's index"),
               ("generation", "generation of the collection's index"),
               ("ready", "1 when the collection's index is loaded"))

    def __init__(self, collections: Callable[[], "Collections | None"]) -> None:
        self._collections = collections

    def collect(self) -> Iterator[Metric]:
        found = self._collections()
        if not found:
            return
        families = {name: GaugeMetricFamily(f"ragfirst_collection_{name}", help,
                                            labels=["collection"])
                    for name, help in self._GAUGES}
        runs = CounterMetricFamily("ragfirst_collection_ingest_runs", "ingest runs of the "
                                   "collection in this process that committed",
                                   labels=["collection"])
        for c in found:
            state = c.state()
            values = {"ready": int(state.ready)}
            if state.ready:
                values.update(documents=state.documents, chunks=state.chunks,
                              generation=state.generation)
            for name, value in values.items():
                families[name].add_metric([c.name], value)
            runs.add_metric([c.name], c.runner.runs)
        yield from families.values()
        yield runs
