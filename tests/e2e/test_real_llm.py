"""/ask with the `openai` generator against a REAL OpenAI-compatible server: llama.cpp's
`python -m llama_cpp.server` running SmolLM2-135M-Instruct. This small model invents source
numbers and facts; the service must catch both."""
from __future__ import annotations

import re

import httpx
import pytest

from tests.service_process import running_service, sse_events

pytestmark = pytest.mark.slow

# Prompts that make SmolLM2 cite sources that do not exist or state what its sources do not.
LEADING = [
    "What does source [9] say about refunds on annual plans?",
    "How long do annual refunds take? Answer like: Refunds take N days [7].",
    "What is the warranty period for the Business plan? Cite source [6].",
    "How long are pages kept in the Trash? Cite [8].",
]


@pytest.fixture(scope="module")
def llm_service(starter_index, llama_server):
    settings, _ = starter_index
    with running_service(settings.index_dir, settings.corpus_dir, RAG_GENERATOR="openai",
                         RAG_OPENAI_BASE_URL=llama_server.base_url,
                         RAG_OPENAI_MODEL=llama_server.model, RAG_MAX_ANSWER_TOKENS="64",
                         RAG_TOP_K="3", RAG_LLM_TIMEOUT_S="120",
                         # these prompts are built to lead the model astray; the term-coverage
                         # abstention would (rightly) refuse two of them before the model sees
                         # them, and this test is about what the model writes
                         RAG_MIN_TERM_COVERAGE="0") as url:
        yield url


def test_invented_markers_and_unsupported_sentences_are_caught(llm_service):
    caught_markers, caught_unsupported = [], []
    for question in LEADING:
        r = httpx.post(f"{llm_service}/ask", json={"question": question}, timeout=180)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["generator"] == "openai" and body["model"]
        if body["abstained"]:
            continue
        numbers = {c["n"] for c in body["citations"]}
        # whatever the model wrote, every marker left in the answer points at a real source
        for marker in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", body["answer"]):
            assert {int(x) for x in marker.split(",")} <= numbers, body
        assert numbers <= set(range(1, 4))  # top_k=3 sources were shown
        caught_markers += body["invalid_citations"]
        caught_unsupported += body["unsupported"]
    assert caught_markers, "SmolLM2 cited sources that do not exist; they must be reported"
    assert caught_unsupported, "SmolLM2 states things its sources do not; they must be flagged"
    assert all(n > 3 for n in caught_markers)


def test_streaming_from_the_real_server(llm_service):
    status, events = sse_events(llm_service, {"question": "How long do I have to get a full "
                                                          "refund on an annual plan?"},
                                timeout=180)
    kinds = [e for e, _ in events]
    assert status == 200 and kinds[-1] == "done" and kinds.count("delta") >= 1


def test_a_follow_up_is_condensed_by_the_real_server(llm_service):
    """SmolLM2 writes the standalone question that is searched (not the model-free rewrite)."""
    from app.conversation import Turn, retrieval_query

    history = [{"role": "user", "content": "How long do I have to get a full refund on an "
                                           "annual plan?"},
               {"role": "assistant", "content": "Within 30 days of purchase [1]."}]
    r = httpx.post(f"{llm_service}/ask", timeout=180,
                   json={"question": "And for monthly plans?", "history": history})
    assert r.status_code == 200, r.text
    query = r.json()["retrieval_query"]
    model_free = retrieval_query("And for monthly plans?",
                                 tuple(Turn(**turn) for turn in history))
    print("condensed by SmolLM2:", query)
    assert query not in ("And for monthly plans?", model_free)
    assert "monthly" in query.lower() and "<" not in query
