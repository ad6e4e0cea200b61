"""POST /ask in-process: the answer's shape, every refusal's status and body, LLM failures with
the sources, the event stream's framing, and the service as an injected dependency."""
from __future__ import annotations

import json
import logging
import re

import pytest

from app.answer import Answer, Timings
from app.errors import GeneratorFailed, GeneratorTimeout
from app.service import ABSTAIN_ANSWER
from tests.fake_llm import FakeLLM
from tests.helpers import OFF_TOPIC, REFUND_QUESTION, assert_citations_are_exact, serving, sse

ANSWER_FIELDS = {"answer", "citations", "abstained", "unsupported", "invalid_citations",
                 "generator", "model", "timings_ms", "index_generation", "index_id",
                 "retrieval_query"}
CITATION_FIELDS = {"n", "path", "page", "start", "end", "text", "score"}


def test_an_answer_has_the_documented_shape_and_exact_citations(client, small_index):
    r = client.post("/ask", json={"question": REFUND_QUESTION})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == ANSWER_FIELDS
    assert not body["abstained"] and "30 days" in body["answer"]
    assert body["citations"] and all(set(c) == CITATION_FIELDS for c in body["citations"])
    assert "kb/refunds.md" in {c["path"] for c in body["citations"]}
    assert_citations_are_exact(small_index.corpus_dir, body["citations"])
    assert {c["n"] for c in body["citations"]} == {int(n) for n in
                                                  re.findall(r"\[(\d+)\]", body["answer"])}
    assert set(body["timings_ms"]) == {"condense", "embed", "retrieve", "generate", "total"}
    assert (body["generator"], body["model"], body["index_generation"]) == ("extractive", None, 1)


def test_a_question_typed_without_accents_finds_the_accented_document(client):
    body = client.post("/ask", json={"question": "When does Cafe Tresor serve crepes?"}).json()
    assert not body["abstained"] and "Thursdays" in body["answer"]
    assert [c["path"] for c in body["citations"]] == ["guides/cafe.md"]


def test_an_off_topic_question_abstains(client):
    body = client.post("/ask", json={"question": OFF_TOPIC}).json()
    assert body["abstained"] and body["citations"] == [] and body["answer"] == ABSTAIN_ANSWER


@pytest.mark.parametrize("stream", [False, True])
def test_nothing_retrieved_abstains_even_when_abstention_is_off(small_index, stream):
    """RAG_ABSTAIN_THRESHOLD=-1 and RAG_MIN_TERM_COVERAGE=0 answer from whatever is found; a
    filter that matches no file finds nothing, which is an abstention, not a 502 about the
    context window."""
    settings = small_index.model_copy(update={"abstain_threshold": -1.0,
                                              "min_term_coverage": 0.0})
    with serving(settings) as client:
        r = client.post("/ask", json={"question": REFUND_QUESTION, "stream": stream,
                                      "filters": {"path": "nowhere/"}})
        assert r.status_code == 200, r.text
        body = json.loads(sse(r)[-1][1]) if stream else r.json()
        assert body["abstained"] and body["citations"] == []


@pytest.mark.parametrize("body", [
    {}, {"question": ""}, {"question": "   "}, {"question": "x" * 2001},
    {"question": "ok", "top_k": 0}, {"question": "ok", "top_k": 51},
    {"question": "ok", "mode": "fuzzy"}, {"question": "ok", "filters": {"type": "doc"}},
    {"question": "ok", "surprise": 1}, {"question": 42},
])
def test_invalid_input_is_422(client, body):
    r = client.post("/ask", json=body)
    assert r.status_code == 422, r.text
    assert "detail" in r.json()


def test_filters_and_modes_are_applied(client):
    body = client.post("/ask", json={"question": "monthly uptime of the Business plan",
                                     "filters": {"type": "txt"}, "mode": "lexical"}).json()
    assert [c["path"] for c in body["citations"]] == ["kb/uptime.txt"]
    body = client.post("/ask", json={"question": "refund within 30 days",
                                     "filters": {"path": "guides/"}}).json()
    assert all(c["path"].startswith("guides/") for c in body["citations"])


def test_no_index_is_503_with_the_fix(no_index):
    with serving(no_index) as client:
        r = client.post("/ask", json={"question": "anything"})
        assert r.status_code == 503 and "make ingest" in r.json()["detail"]
        assert r.headers["x-should-retry"] == "false"
        assert client.post("/ask", json={"question": "anything", "stream": True}).status_code == 503


@pytest.mark.parametrize("error,status", [
    (GeneratorFailed("LLM backend answered HTTP 500: boom"), 502),
    (GeneratorTimeout("LLM backend did not answer within 1 s"), 504),
])
def test_an_llm_failure_is_its_status_with_the_sources(failing, error, status):
    with failing(error) as client:
        for stream in (False, True):  # before any text, a stream fails the same way
            r = client.post("/ask", json={"question": REFUND_QUESTION, "stream": stream})
            assert r.status_code == status and r.headers["x-should-retry"] == "false"
            body = r.json()
            assert body["detail"] == str(error)
            assert body["sources"] and all(set(c) == CITATION_FIELDS for c in body["sources"])


def test_a_stream_is_deltas_then_one_done_event_with_the_answer(client):
    r = client.post("/ask", json={"question": REFUND_QUESTION, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache" and r.headers["x-accel-buffering"] == "no"
    events = sse(r)
    kinds = [e for e, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"delta"} and len(kinds) >= 2
    done = json.loads(events[-1][1])
    assert set(done) == ANSWER_FIELDS
    assert "".join(json.loads(d)["text"] for _, d in events[:-1]) == done["answer"]


def test_an_abstention_streams_its_text_then_done(client):
    events = sse(client.post("/ask", json={"question": OFF_TOPIC, "stream": True}))
    assert [e for e, _ in events] == ["delta", "done"]
    assert json.loads(events[0][1])["text"] == ABSTAIN_ANSWER
    assert json.loads(events[1][1])["abstained"] is True


def test_a_backend_that_refuses_connections_is_502_with_the_sources(small_index):
    """The real OpenAI-compatible generator, pointed at a port nothing listens on."""
    settings = small_index.model_copy(update={
        "generator": "openai", "openai_base_url": FakeLLM.closed_url(), "llm_timeout_s": 3.0})
    with serving(settings) as client:
        r = client.post("/ask", json={"question": REFUND_QUESTION})
        assert r.status_code == 502 and r.json()["sources"]
        # retried (RAG_LLM_RETRIES=2), then the real error, not a timeout; that no attempt
        # starts after the deadline is tests/app/test_generator_openai.py's, by timestamps
        assert "(after 3 attempts)" in r.json()["detail"]
        assert "cannot connect to the LLM backend" in r.json()["detail"]
        r = client.post("/ask", json={"question": REFUND_QUESTION, "stream": True})
        assert r.status_code == 502 and r.json()["sources"]  # before the first token: a status


def test_a_failure_mid_stream_ends_it_with_an_error_event(failing):
    with failing(GeneratorFailed("LLM stream was cut off"), pieces=["Annual plans "]) as client:
        r = client.post("/ask", json={"question": REFUND_QUESTION, "stream": True})
    assert r.status_code == 200
    events = sse(r)
    assert [e for e, _ in events] == ["delta", "error"]
    error = json.loads(events[1][1])
    assert error["status"] == 502 and error["detail"] == "LLM stream was cut off"
    assert error["sources"] and set(error["sources"][0]) == CITATION_FIELDS


class CannedService:
    """A fake service: one answer for every question."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    def ask(self, question) -> Answer:
        return self.answer


def test_ask_answers_from_the_collections_own_service(client):
    canned = Answer(text="Canned [1].", citations=[], abstained=False, unsupported=[],
                    invalid_citations=[1], generator="canned", model="c-1", index_generation=7,
                    timings=Timings(embed=1, retrieve=2, generate=3, total=6))
    default = client.app.state.collections.get("default")
    real, default.service = default.service, CannedService(canned)
    try:
        body = client.post("/ask", json={"question": "anything"}).json()
    finally:
        default.service = real
    assert body == canned.to_json() and body["answer"] == "Canned [1]."
    assert body["timings_ms"] == {"condense": 0, "embed": 1, "retrieve": 2, "generate": 3,
                                 "total": 6}


def test_the_request_log_holds_question_and_answer_only_when_asked(small_index, caplog):
    for log_content in (False, True):
        caplog.clear()
        with serving(small_index.model_copy(update={"log_content": log_content})) as client, \
                caplog.at_level(logging.INFO, logger="ragfirst.request"):
            body = client.post("/ask", json={"question": REFUND_QUESTION},
                               headers={"X-Request-ID": "debug-1"}).json()
        (line,) = [r.fields for r in caplog.records if r.getMessage() == "request"]
        assert line["request_id"] == "debug-1" and line["route"] == "/ask"
        if log_content:
            assert line["question"] == REFUND_QUESTION and line["answer"] == body["answer"]
        else:
            assert "question" not in line and "answer" not in line
