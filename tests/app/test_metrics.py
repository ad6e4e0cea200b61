"""/metrics' registry (prometheus_client), read back with Prometheus' own parser."""
from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.parser import text_string_to_metric_families

from app.answer import Answer, Timings
from app.collections import CollectionState
from app.errors import IndexNotReady
from app.metrics import Metrics


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus' own parser: (sample name, labels) -> value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def render(m: Metrics) -> dict[tuple[str, frozenset], float]:
    body, content_type = m.render()
    assert content_type == CONTENT_TYPE_PLAIN_0_0_4  # prometheus_client's own, by default
    return parse(body.decode())


def test_metrics_render_in_the_prometheus_format():
    m = Metrics()
    m.requests.labels("/ask", "POST", "200").inc()
    m.requests.labels("/ask", "POST", "200").inc()
    m.requests.labels('/we"ird\\', "GET", "404").inc()  # label values are escaped
    for seconds in (0.003, 0.2, 0.2, 100.0):
        m.latency.labels("/ask").observe(seconds)
    samples = render(m)
    ask = frozenset({("route", "/ask")})
    assert samples[("ragfirst_http_requests_total",
                    frozenset({("route", "/ask"), ("method", "POST"), ("status", "200")}))] == 2
    assert samples[("ragfirst_http_requests_total", frozenset(
        {("route", '/we"ird\\'), ("method", "GET"), ("status", "404")}))] == 1
    bucket = lambda le: samples[("ragfirst_http_request_duration_seconds_bucket",  # noqa: E731
                                 ask | {("le", le)})]
    assert (bucket("0.005"), bucket("0.1"), bucket("0.25"), bucket("60.0"), bucket("+Inf")) \
        == (1, 1, 3, 3, 4)
    assert samples[("ragfirst_http_request_duration_seconds_count", ask)] == 4
    assert samples[("ragfirst_http_request_duration_seconds_sum", ask)] == pytest.approx(100.403)
    # before any answer the outcomes read 0, not absent; and no _created series
    assert samples[("ragfirst_answers_total", frozenset({("outcome", "abstained")}))] == 0
    assert not any(name.endswith("_created") for name, _ in samples)


def test_an_answer_is_counted_where_it_belongs():
    m = Metrics()
    timings = Timings(embed=20.0, retrieve=5.0, generate=1000.0, total=1026.0)
    answered = Answer(text="It is 10 days [1]. Cats fly.", citations=[], abstained=False,
                      unsupported=["Cats fly."], invalid_citations=[], generator="openai",
                      model="m", timings=timings, index_generation=3)
    m.observe_answer(answered)
    m.observe_answer(answered.model_copy(update={"abstained": True, "unsupported": []}))
    assert m.sample("ragfirst_answers_total", outcome="answered") == 1
    assert m.sample("ragfirst_answers_total", outcome="abstained") == 1
    assert m.sample("ragfirst_retrieval_seconds_count") == 2
    assert m.sample("ragfirst_retrieval_seconds_sum") == pytest.approx(0.05)
    # an abstention generated nothing; 1.0 s is on a bucket's bound: counted in it (le)
    assert m.sample("ragfirst_generation_seconds_count", generator="openai") == 1
    assert m.sample("ragfirst_generation_seconds_bucket", generator="openai", le="1.0") == 1
    assert m.sample("ragfirst_unsupported_sentences_total") == 1


class _Index:
    def __init__(self, snapshot=None) -> None:
        self.snapshot = snapshot

    @contextmanager
    def lease(self):
        if self.snapshot is None:
            raise IndexNotReady("no index yet")
        yield self.snapshot

    def storage(self) -> dict[str, int]:
        return {"database": 4096, "wal": 0 if self.snapshot is None else 8192, "dense": 0}


class _Collections(list):
    """Collections as the collector reads them: iterable, with a primary."""

    @property
    def primary(self):
        return self[0]


def test_the_served_index_and_the_ingests_are_read_at_each_scrape():
    m, built = Metrics(), []
    m.watch(lambda: built[0] if built else None)
    assert not any(name.startswith("ragfirst_index") for name, _ in render(m))  # not built yet
    default = SimpleNamespace(name="default", service=SimpleNamespace(index=_Index()),
                              runner=SimpleNamespace(runs=3, failures=1))
    def state():  # as Collection.state reads the index
        snap = default.service.index.snapshot
        return CollectionState(snap is not None, *((snap.document_count, snap.chunk_count,
                                                     snap.generation) if snap else (None,) * 3))

    default.state = state
    built.append(_Collections([default]))
    parts = {"service": default.service}
    samples = render(m)
    assert samples[("ragfirst_index_ready", frozenset())] == 0
    assert samples[("ragfirst_ingest_runs_total", frozenset())] == 3
    assert samples[("ragfirst_ingest_failures_total", frozenset())] == 1
    parts["service"].index.snapshot = SimpleNamespace(
        document_count=24, chunk_count=319, generation=5, failures=lambda: [("a.pdf", "x", 1)])
    samples = render(m)
    assert samples[("ragfirst_index_ready", frozenset())] == 1
    assert (samples[("ragfirst_index_documents", frozenset())],
            samples[("ragfirst_index_chunks", frozenset())],
            samples[("ragfirst_index_generation", frozenset())],
            samples[("ragfirst_index_refused_files", frozenset())]) == (24, 319, 5, 1)
    storage = "ragfirst_index_storage_bytes"
    assert samples[(storage, frozenset({("part", "wal")}))] == 8192
    assert samples[(storage, frozenset({("part", "database")}))] == 4096
    assert samples[("ragfirst_collection_documents", frozenset({("collection", "default")}))] \
        == 24


def test_a_scraper_that_asks_for_openmetrics_gets_it():
    m = Metrics()
    body, content_type = m.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith(OPENMETRICS) and body.decode().rstrip().endswith("# EOF")
