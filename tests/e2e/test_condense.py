"""The LLM's condensing step, over HTTP, against the real service with the `openai` generator
and the fake OpenAI-compatible server (tests/fake_llm.py): a follow-up is rewritten by the
LLM and searched in that form, the answer still addresses the user's own question, a question
that stands alone (or has no history) costs no extra call, and a condensing call that fails,
hangs or writes nothing falls back to the model-free rewrite within the deadline."""
from __future__ import annotations

import httpx
import pytest

from tests.fake_llm import REWRITE
from tests.service_process import running_service, sse_events

pytestmark = pytest.mark.slow
LLM_TIMEOUT_S = 8
CONDENSE_TIMEOUT_S = 1
FOLLOW_UP = "And for monthly plans?"
REFUND = [{"role": "user", "content": "How long do I have to get a full refund on an annual plan?"},
          {"role": "assistant", "content": "Within 30 days of purchase [1]."}]


@pytest.fixture(scope="module")
def llm_service(starter_index, fake_llm):
    settings, _ = starter_index
    url = fake_llm.base_url("switch")
    with running_service(settings.index_dir, settings.corpus_dir, RAG_GENERATOR="openai",
                         RAG_OPENAI_BASE_URL=url, RAG_LLM_TIMEOUT_S=str(LLM_TIMEOUT_S),
                         RAG_CONDENSE_TIMEOUT_S=str(CONDENSE_TIMEOUT_S)) as service_url:
        yield service_url, url


def ask(service_url: str, **body) -> dict:
    r = httpx.post(f"{service_url}/ask", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def ask_with(llm_service, fake_llm, mode: str, **body) -> tuple[dict, list, list]:
    """/ask with the fake LLM in `mode`: the answer, and the condensing requests and the
    answer requests the LLM got for it."""
    service_url, url = llm_service
    fake_llm.set_mode(url, mode)
    before = len(fake_llm.requests(url))
    answer = ask(service_url, **body)
    new = fake_llm.requests(url)[before:]
    condensing = [r for r in new if "standalone question" in r.body["messages"][0]["content"]]
    return answer, condensing, [r for r in new if r not in condensing]


def test_a_follow_up_is_condensed_and_searched_in_that_form(llm_service, fake_llm):
    body, condensing, answering = ask_with(llm_service, fake_llm, "rewrite",
                                           question=FOLLOW_UP, history=REFUND)
    assert body["retrieval_query"] == REWRITE
    assert len(condensing) == 1 and len(answering) == 1
    prompt = condensing[0].body["messages"][1]["content"]
    assert "User: How long do I have to get a full refund" in prompt
    assert "Assistant: Within 30 days of purchase." in prompt  # its [1] numbers other sources
    assert f"Last question: {FOLLOW_UP}" in prompt
    assert condensing[0].body["max_tokens"] <= 64 and condensing[0].body["stream"] is False
    # the answer is asked for the user's own question, from what the rewrite retrieved
    answer_prompt = answering[0].body["messages"][-1]["content"]
    assert f"Question: {FOLLOW_UP}" in answer_prompt
    assert "User: How long do I have to get a full refund" in answer_prompt  # the context
    assert 'from="kestrelbook/refund-policy.md"' in answer_prompt


@pytest.mark.parametrize("question,history", [
    ("What is reciprocal rank fusion?", REFUND),  # stands alone: no rewrite needed
    (FOLLOW_UP, []),  # no history: nothing to condense from
])
def test_no_condensing_call_when_the_question_stands_alone(llm_service, fake_llm, question,
                                                           history):
    body, condensing, answering = ask_with(llm_service, fake_llm, "rewrite",
                                           question=question, history=history)
    assert body["retrieval_query"] == question
    assert condensing == [] and len(answering) == 1


@pytest.mark.parametrize("mode", ["slowrewrite", "badrewrite", "emptyrewrite"])
def test_a_failed_condensing_call_falls_back_to_the_model_free_rewrite(llm_service, fake_llm,
                                                                       mode):
    body, condensing, answering = ask_with(llm_service, fake_llm, mode,
                                           question=FOLLOW_UP, history=REFUND)
    assert body["retrieval_query"].startswith(FOLLOW_UP) and "refund" in body["retrieval_query"]
    assert "kestrelbook/refund-policy.md" in {c["path"] for c in body["citations"]}
    assert len(condensing) == 1, "one condensing attempt, never retried"
    # and the answer was still asked for: had condensing (1 s) taken the request's 8 s, the
    # answer would be a 504, not the 200 `ask` checks
    assert len(answering) == 1


def test_streaming_a_condensed_follow_up(llm_service, fake_llm):
    service_url, url = llm_service
    fake_llm.set_mode(url, "rewrite")
    status, events = sse_events(service_url, {"question": FOLLOW_UP, "history": REFUND,
                                              "stream": True})
    assert status == 200 and events[-1][0] == "done"
    assert events[-1][1]["retrieval_query"] == REWRITE
