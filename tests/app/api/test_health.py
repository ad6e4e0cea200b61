"""/healthz, /readyz and /metrics in-process."""
from __future__ import annotations

import time

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import REFUND_QUESTION, serving


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert (body["ready"], body["index_generation"], body["documents"], body["chunks"]) \
        == (True, 1, 3, 3)
    assert set(body["ingest"]) == {"watching", "running", "runs", "failures", "last",
                                   "retrying"}
    assert len(body["index_id"]) == 16
    if body["lexical_index"] == "postgres":  # BM25 in SQL (ingest/store/postgres/lexical.py)
        return
    assert body["lexical_index"] in ("building", "memory")  # the default: in-memory BM25
    for _ in range(2000):  # built in the background from the first snapshot on
        if client.get("/readyz").json()["lexical_index"] == "memory":
            break
        time.sleep(0.005)
    assert client.get("/readyz").json()["lexical_index"] == "memory"


def test_readiness_says_fts5_ranks_when_set_so(small_index):
    with serving(small_index.model_copy(update={"lexical_index": "fts5"})) as client:
        expected = "fts5" if small_index.store == "sqlite" else "postgres"  # Postgres: in SQL
        assert client.get("/readyz").json()["lexical_index"] == expected
        assert client.post("/ask", json={"question": REFUND_QUESTION}).status_code == 200


def test_not_ready_without_an_index(no_index):
    with serving(no_index) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False
        assert "make ingest" in r.json()["detail"]
        assert client.get("/healthz").status_code == 200
        metrics = samples(client.get("/metrics").text)
        assert metrics[("ragfirst_index_ready", frozenset())] == 0


def test_metrics_count_what_the_service_did(client):
    client.post("/ask", json={"question": REFUND_QUESTION})
    client.post("/ask", json={"question": ""})
    client.get("/v1/models/unknown")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    m = samples(r.text)
    request = lambda route, status, method: m.get(("ragfirst_http_requests_total", frozenset(  # noqa: E731
        {("route", route), ("method", method), ("status", status)})), 0)
    assert request("/ask", "200", "POST") == 1 and request("/ask", "422", "POST") == 1
    assert request("/v1/models/{model_id:path}", "404", "GET") == 1  # the template, not the path
    assert m[("ragfirst_answers_total", frozenset({("outcome", "answered")}))] == 1
    assert m[("ragfirst_index_documents", frozenset())] == 3
    assert m[("ragfirst_index_refused_files", frozenset())] == 1
