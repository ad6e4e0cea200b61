"""The API key, /metrics and the per-request log line on the real service over HTTP (its own
copy of the starter corpus and index, a key set). The pieces have their own tests in tests/app
(test_auth, test_metrics, test_telemetry)."""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service_process import copy_starter, running_service, service_log, sse_events

KEY = "k3y-for-tests-0a1b2c"
BEARER = {"Authorization": f"Bearer {KEY}"}
QUESTION = "What does the Business plan cost?"


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus' own parser: (sample name, labels) -> value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def service(starter_index, tmp_path_factory):
    base = tmp_path_factory.mktemp("observed")
    index, corpus = copy_starter(starter_index, base)
    with running_service(index, corpus, RAG_API_KEY=KEY) as url:
        yield url, base


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    r = httpx.get(f"{url}/metrics", headers=BEARER)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.slow
def test_every_endpoint_but_the_probes_wants_the_key(service):
    url, _ = service
    for path in ("/healthz", "/readyz"):
        assert httpx.get(url + path).status_code == 200
    basic = "Basic " + base64.b64encode(f"me:{KEY}".encode()).decode()
    endpoints = [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/documents"),
                 ("GET", "/metrics"), ("GET", "/v1/models"), ("GET", "/docs"),
                 ("GET", "/openapi.json"), ("POST", "/ask"), ("POST", "/ingest"),
                 ("POST", "/v1/chat/completions"), ("GET", "/no-such-page")]
    for method, path in endpoints:
        for headers in ({}, {"Authorization": "Bearer " + KEY[:-1] + "d"},
                        {"X-API-Key": "wrong"}, {"Authorization": "Basic bWU6d3Jvbmc="}):
            r = httpx.request(method, url + path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers)
            assert r.headers["www-authenticate"].startswith("Basic realm=")
            body = r.json()
            assert "API key" in (body["error"]["message"] if path.startswith("/v1/")
                                 else body["detail"])
    for method, path in endpoints:
        if path == "/ingest":
            continue  # with a key: runs an ingest (tested below)
        for headers in (BEARER, {"X-API-Key": KEY}, {"Authorization": basic}):
            r = httpx.request(method, url + path, headers=headers,
                              json={"question": QUESTION} if path == "/ask" else {})
            assert r.status_code != 401, (method, path, headers)
            if path != "/no-such-page" and path != "/v1/chat/completions":
                assert r.status_code == 200, (method, path, r.text)


@pytest.mark.slow
def test_metrics_count_requests_answers_and_ingests(service):
    url, base = service
    before = scrape(url)
    assert httpx.post(f"{url}/ask", json={"question": QUESTION}, headers=BEARER,
                      timeout=60).status_code == 200
    assert httpx.post(f"{url}/ask", json={"question": "Who won the 1998 football world cup?"},
                      headers=BEARER, timeout=60).json()["abstained"]
    status, events = sse_events(url, {"question": QUESTION}, headers=BEARER)
    assert status == 200 and events[-1][0] == "done"
    assert httpx.post(f"{url}/ask", json={"question": ""}, headers=BEARER).status_code == 422
    assert httpx.get(f"{url}/nothing/here", headers=BEARER).status_code == 404
    assert httpx.get(f"{url}/metrics").status_code == 401
    after = scrape(url)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "ragfirst_http_requests_total"
    assert delta(requests, route="/ask", method="POST", status="200") == 3
    assert delta(requests, route="/ask", method="POST", status="422") == 1
    assert delta(requests, route="unmatched", method="GET", status="404") == 1
    assert delta(requests, route="/metrics", method="GET", status="401") == 1
    assert delta(requests, route="/metrics", method="GET", status="200") == 1  # `before`
    assert delta("ragfirst_http_request_duration_seconds_count", route="/ask") == 4
    assert delta("ragfirst_answers_total", outcome="answered") == 2
    assert delta("ragfirst_answers_total", outcome="abstained") == 1
    assert delta("ragfirst_retrieval_seconds_count") == 3
    assert delta("ragfirst_generation_seconds_count", generator="extractive") == 2
    assert delta("ragfirst_retrieval_seconds_sum") > 0
    # Histograms are whole: cumulative buckets, +Inf equal to the count.
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in after.items()
                     if name == "ragfirst_http_request_duration_seconds_bucket"
                     and ("route", "/ask") in labels)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1][1] == value(after, "ragfirst_http_request_duration_seconds_count",
                                   route="/ask")
    ready = httpx.get(f"{url}/readyz").json()
    assert value(after, "ragfirst_index_documents") == ready["documents"]
    assert value(after, "ragfirst_index_chunks") == ready["chunks"]
    assert value(after, "ragfirst_index_ready") == 1

    # An ingest that adds a document, then one that fails.
    (base / "corpus" / "metrics-note.md").write_text("# Metrics note\n\nThe heron count is 41.\n")
    report = httpx.post(f"{url}/ingest", headers=BEARER, timeout=120).json()
    assert report["files"]["added"] == ["metrics-note.md"]
    (base / "corpus").rename(base / "corpus-away")
    try:
        assert httpx.post(f"{url}/ingest", headers=BEARER, timeout=120).status_code == 409
    finally:
        (base / "corpus-away").rename(base / "corpus")
    last = scrape(url)
    assert value(last, "ragfirst_ingest_runs_total") - value(after, "ragfirst_ingest_runs_total") == 1
    assert value(last, "ragfirst_ingest_failures_total") - \
        value(after, "ragfirst_ingest_failures_total") == 1
    assert value(last, "ragfirst_index_documents") == ready["documents"] + 1
    assert value(last, "ragfirst_index_generation") == report["generation"]


def request_lines(log: Path, ids: set[str], timeout: float = 10) -> dict[str, list[dict]]:
    """The log's request lines for these request ids (waiting for the last to be written)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        found: dict[str, list[dict]] = {}
        for line in lines:
            if line.get("msg") == "request" and line.get("request_id") in ids:
                found.setdefault(line["request_id"], []).append(line)
        if set(found) == ids or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.mark.slow
def test_one_json_line_per_request_without_content_or_secrets(service):
    url, base = service
    calls = {
        "ask-json": ("POST", "/ask", {"question": QUESTION}, BEARER),
        "ask-stream": ("POST", "/ask", {"question": QUESTION, "stream": True}, BEARER),
        "ask-bad": ("POST", "/ask", {"question": 7}, BEARER),
        "no-key": ("GET", "/documents", None, {}),
        "chat": ("POST", "/v1/chat/completions",
                 {"model": "ragfirst", "messages": [{"role": "user", "content": QUESTION}]},
                 BEARER),
        "health": ("GET", "/healthz", None, {}),
    }
    answers = {}
    for rid, (method, path, body, headers) in calls.items():
        r = httpx.request(method, url + path, json=body, timeout=60,
                          headers={**headers, "X-Request-ID": rid})
        assert r.headers["x-request-id"] == rid
        answers[rid] = r
    generated = httpx.get(f"{url}/healthz").headers["x-request-id"]  # no id sent: one is made
    assert len(generated) == 32 and generated not in calls
    unsafe = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "a b\"} {forged"})
    assert len(unsafe.headers["x-request-id"]) == 32  # replaced, not echoed into the log

    log = service_log(base / "index", url)
    found = request_lines(log, set(calls))
    assert {rid: len(lines) for rid, lines in found.items()} == {rid: 1 for rid in calls}
    line = {rid: lines[0] for rid, lines in found.items()}
    assert (line["ask-json"]["route"], line["ask-json"]["status"],
            line["ask-json"]["method"]) == ("/ask", 200, "POST")
    assert line["ask-bad"]["status"] == 422 and line["no-key"]["status"] == 401
    assert line["chat"]["route"] == "/v1/chat/completions"
    for rid in ("ask-json", "ask-stream", "chat"):
        assert line[rid]["generator"] == "extractive" and line[rid]["abstained"] is False
        assert set(line[rid]["timings_ms"]) == {"condense", "embed", "retrieve", "generate", "total"}
        assert line[rid]["citations"] >= 1 and line[rid]["index_generation"] >= 1
        # the stream is timed whole: at least as long as its own pipeline
        assert line[rid]["duration_ms"] >= line[rid]["timings_ms"]["total"]
    assert "generator" not in line["health"]  # a probe is no answer
    assert isinstance(line["health"]["duration_ms"], float)  # timed, like every request
    # Every line the service wrote is JSON; none holds a question, an answer, a passage or
    # the key.
    text = log.read_text()
    assert all(json.loads(raw) for raw in text.splitlines() if raw.strip())
    passages = [c["text"][:60] for c in answers["ask-json"].json()["citations"]]
    for secret in [QUESTION, KEY, answers["ask-json"].json()["answer"][:40], *passages]:
        assert secret not in text
