"""The service with the `openai` generator, over HTTP, when the LLM backend misbehaves: each
fault gives its documented status within the timeout, with the retrieved sources in the body."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.service_process import running_service, sse_events

pytestmark = pytest.mark.slow
TIMEOUT_S = 3


@pytest.fixture(scope="module")
def llm_service(starter_index, fake_llm):
    settings, _ = starter_index
    url = fake_llm.base_url("switch")
    with running_service(settings.index_dir, settings.corpus_dir, RAG_GENERATOR="openai",
                         RAG_OPENAI_BASE_URL=url, RAG_LLM_TIMEOUT_S=str(TIMEOUT_S),
                         RAG_LLM_RETRIES="1") as service_url:
        yield service_url, url


QUESTION = {"question": "How long do I have to get a full refund on an annual plan?"}


def ask(service_url: str, **extra) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    r = httpx.post(f"{service_url}/ask", json={**QUESTION, **extra}, timeout=60)
    return r, time.monotonic() - started


def test_a_working_backend_answers_with_checked_citations(llm_service, fake_llm):
    service_url, url = llm_service
    fake_llm.set_mode(url, "ok")  # answers "Refunds take 30 days [1]."
    r, _ = ask(service_url)
    body = r.json()
    assert r.status_code == 200 and body["generator"] == "openai"
    assert body["answer"] == "Refunds take 30 days [1]." and body["citations"][0]["n"] == 1
    prompt = fake_llm.requests(url)[-1].body["messages"][-1]["content"]
    assert '<source n="1"' in prompt and "refund" in prompt.lower()


@pytest.mark.parametrize("mode,status", [("http500", 502), ("malformed", 502),
                                         ("nochoices", 502), ("400", 502), ("cut", 502),
                                         ("hang", 504), ("drip", 504)])
def test_backend_faults_give_their_status_with_sources(llm_service, fake_llm, mode, status):
    service_url, url = llm_service
    fake_llm.set_mode(url, mode)
    r, took = ask(service_url)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["detail"] and body["sources"], "the retrieved sources come with the error"
    assert "kestrelbook/refund-policy.md" in {s["path"] for s in body["sources"]}
    assert took < TIMEOUT_S + 1.5, f"{mode} took {took:.1f} s, past the {TIMEOUT_S} s timeout"


def stream(service_url: str) -> tuple[int, list[tuple[str, dict]]]:
    return sse_events(service_url, QUESTION)


def test_stream_cut_midway_ends_with_an_error_event(llm_service, fake_llm):
    service_url, url = llm_service
    fake_llm.set_mode(url, "cut")  # two deltas, then the connection closes
    status, events = stream(service_url)
    assert status == 200
    kinds = [e for e, _ in events]
    assert kinds[:2] == ["delta", "delta"] and kinds[-1] == "error" and "done" not in kinds
    assert events[-1][1]["status"] == 502 and events[-1][1]["sources"]


def test_stream_that_fails_before_any_text_is_an_http_error(llm_service, fake_llm):
    service_url, url = llm_service
    fake_llm.set_mode(url, "hang")
    started = time.monotonic()
    status, events = stream(service_url)
    assert status == 504 and events[0][1]["sources"]
    assert time.monotonic() - started < TIMEOUT_S + 1.5


def test_abstention_does_not_call_the_llm(llm_service, fake_llm):
    service_url, url = llm_service
    fake_llm.set_mode(url, "ok")
    before = fake_llm.attempts(url)
    r = httpx.post(f"{service_url}/ask", timeout=60,
                   json={"question": "What is the boiling point of tungsten in kelvin?"})
    assert r.status_code == 200 and r.json()["abstained"]
    assert fake_llm.attempts(url) == before
