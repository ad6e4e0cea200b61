"""The API key, /metrics and the per-request log line: unit checks of the pieces, then the real
service over HTTP (its own copy of the starter corpus and index, a key set)."""
from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.auth import key_matches, presented_keys
from app.metrics import Counter, Histogram, Metrics
from app.telemetry import RequestTelemetry
from app.settings import Settings
from tests.service_process import copy_starter, running_service, service_log, sse_events

KEY = "k3y-for-tests-0a1b2c"
BEARER = {"Authorization": f"Bearer {KEY}"}
QUESTION = "What does the Business plan cost?"


# --- the pieces ------------------------------------------------------------------------------

@pytest.mark.parametrize("headers,expected", [
    ([(b"authorization", b"Bearer abc")], [b"abc"]),
    ([(b"authorization", b"bearer  abc ")], [b"abc"]),
    ([(b"x-api-key", b"abc")], [b"abc"]),
    ([(b"authorization", b"Basic " + base64.b64encode(b"anyone:abc"))], [b"abc"]),
    ([(b"authorization", b"Basic " + base64.b64encode(b"abc"))], [b""]),  # no password
    ([(b"authorization", b"Basic not-base64!")], []),
    ([(b"authorization", b"Digest abc")], []),
    ([(b"x-api-key", b"proxy"), (b"authorization", b"Bearer abc")], [b"proxy", b"abc"]),
    ([], []),
])
def test_the_key_is_read_from_the_usual_headers(headers, expected):
    assert presented_keys(headers) == expected


def test_key_comparison():
    assert key_matches([b"abc"], b"abc") and key_matches([b"wrong", b"abc"], b"abc")
    assert not key_matches([b"abd"], b"abc") and not key_matches([b"ab"], b"abc")
    assert not key_matches([], b"abc") and not key_matches([b""], b"abc")


def test_an_empty_api_key_setting_means_no_key(monkeypatch):
    monkeypatch.setenv("RAG_API_KEY", "")
    assert Settings().api_key is None
    monkeypatch.setenv("RAG_API_KEY", "s3cret")
    key = Settings().api_key
    assert key.get_secret_value() == "s3cret" and "s3cret" not in repr(Settings())


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus' own parser: (sample name, labels) -> value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_render_in_the_prometheus_format():
    m = Metrics(lambda: [("x_docs", "gauge", "documents", 7)])
    m.requests.inc("/ask", "POST", "200")
    m.requests.inc("/ask", "POST", "200")
    m.requests.inc('/we"ird\\', "GET", "404")  # label values are escaped
    for seconds in (0.003, 0.2, 0.2, 100.0):
        m.latency.observe(seconds, "/ask")
    samples = parse(m.render())
    ask = frozenset({("route", "/ask")})
    assert samples[("ragfirst_http_requests_total",
                    frozenset({("route", "/ask"), ("method", "POST"), ("status", "200")}))] == 2
    assert samples[("ragfirst_http_requests_total", frozenset(
        {("route", '/we"ird\\'), ("method", "GET"), ("status", "404")}))] == 1
    bucket = lambda le: samples[("ragfirst_http_request_duration_seconds_bucket",  # noqa: E731
                                 ask | {("le", le)})]
    assert (bucket("0.005"), bucket("0.1"), bucket("0.25"), bucket("60"), bucket("+Inf")) \
        == (1, 1, 3, 3, 4)
    assert samples[("ragfirst_http_request_duration_seconds_count", ask)] == 4
    assert samples[("ragfirst_http_request_duration_seconds_sum", ask)] == pytest.approx(100.403)
    assert samples[("x_docs", frozenset())] == 7
    # before any answer the outcomes read 0, not absent
    assert samples[("ragfirst_answers_total", frozenset({("outcome", "abstained")}))] == 0


def test_metric_types_count_as_they_should():
    c, h = Counter("c_total", "c", ("a",)), Histogram("h", "h", buckets=(1.0,))
    c.inc("x", amount=2.5)
    h.observe(1.0)  # on the bound: counted in it (le = less or equal)
    h.observe(1.5)
    assert c.value("x") == 2.5 and c.value("y") == 0 and h.count() == 2
    assert 'h_bucket{le="1"} 1' in "\n".join(h.render())


def test_a_crash_is_a_json_500_with_the_request_id_and_one_log_line(caplog):
    """A bug in a handler (not an AppError): answered here, logged once with its error."""
    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    metrics = Metrics(lambda: [])
    app = RequestTelemetry(broken, metrics, routes=[])
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    for path in ("/ask", "/v1/chat/completions"):
        scope = {"type": "http", "method": "POST", "path": path, "root_path": "",
                 "headers": [(b"x-request-id", b"crash-1")]}
        with caplog.at_level("INFO", logger="ragfirst.request"):
            asyncio.run(app(scope, receive, send))
        start, body = sent[-2], json.loads(sent[-1]["body"])
        assert start["status"] == 500 and (b"x-request-id", b"crash-1") in start["headers"]
        message = body["error"]["message"] if path.startswith("/v1/") else body["detail"]
        assert "crash-1" in message
    lines = [r for r in caplog.records if r.getMessage() == "request"]
    assert len(lines) == 2 and lines[0].fields["error"] == "RuntimeError"
    assert lines[0].fields["status"] == 500 and "incomplete" not in lines[0].fields
    # The method label is bounded: a made-up method is "other".
    scope = {"type": "http", "method": "FOO1", "path": "/x", "root_path": "", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert metrics.requests.value("unmatched", "other", "500") == 1
    assert metrics.requests.value("unmatched", "FOO1", "500") == 0


# --- the real service ------------------------------------------------------------------------

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
        assert set(line[rid]["timings_ms"]) == {"embed", "retrieve", "generate", "total"}
        assert line[rid]["citations"] >= 1 and line[rid]["index_generation"] >= 1
        # the stream is timed whole: at least as long as its own pipeline
        assert line[rid]["duration_ms"] >= line[rid]["timings_ms"]["total"]
    assert "generator" not in line["health"] and line["health"]["duration_ms"] >= 0
    # Every line the service wrote is JSON; none holds a question, an answer, a passage or
    # the key.
    text = log.read_text()
    assert all(json.loads(raw) for raw in text.splitlines() if raw.strip())
    passages = [c["text"][:60] for c in answers["ask-json"].json()["citations"]]
    for secret in [QUESTION, KEY, answers["ask-json"].json()["answer"][:40], *passages]:
        assert secret not in text


@pytest.mark.slow
def test_the_debug_setting_adds_question_and_answer(starter_index):
    settings, _ = starter_index
    with running_service(settings.index_dir, settings.corpus_dir,
                         RAG_LOG_CONTENT="true") as url:
        r = httpx.post(f"{url}/ask", json={"question": QUESTION},
                       headers={"X-Request-ID": "debug-1"}, timeout=60)
        found = request_lines(service_log(settings.index_dir, url), {"debug-1"})
    line = found["debug-1"][0]
    assert line["question"] == QUESTION and line["answer"] == r.json()["answer"]
