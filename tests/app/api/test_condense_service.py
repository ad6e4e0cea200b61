"""The service's condensing step in-process, with a deterministic fake condenser: which
questions it is asked for, the budget it gets, and the fallback to the model-free rewrite
when it fails, times out or writes nothing usable (the real HTTP LLM: tests/e2e)."""
from __future__ import annotations

import time

import pytest

from app.conversation import Turn, retrieval_query
from app.errors import GeneratorFailed, GeneratorTimeout
from app.generators.extractive import ExtractiveGenerator
from app.service import Question, RagService
from ingest.embedders import HashingEmbedder

HISTORY = (Turn("user", "How long do refunds take?"),
           Turn("assistant", "Refunds take 10 business days [1]."))


class FakeCondenser(ExtractiveGenerator):
    """Answers as the extractive generator does; condenses as it is told."""

    def __init__(self, reply: str | Exception = "How long do refunds take for gift cards?"):
        super().__init__()
        self.reply, self.calls = reply, []

    def condense(self, question, history, deadline):
        self.calls.append((question, tuple(history), deadline - time.monotonic()))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


@pytest.fixture
def service(small_index):
    def make(condenser: FakeCondenser, **overrides) -> RagService:
        settings = small_index.model_copy(update=overrides)
        return RagService.from_settings(settings, HashingEmbedder(), condenser)
    return make


def test_a_follow_up_is_searched_as_the_llm_condensed_it(service):
    condenser = FakeCondenser()
    svc = service(condenser, llm_timeout_s=60, condense_timeout_s=5)
    answer = svc.ask(Question("And for gift cards?", 3, history=HISTORY))
    assert answer.retrieval_query == "How long do refunds take for gift cards?"
    (question, history, budget), = condenser.calls
    assert question == "And for gift cards?" and history == HISTORY
    assert 4 < budget <= 5  # RAG_CONDENSE_TIMEOUT_S
    assert answer.timings.condense >= 0 and answer.timings.total >= answer.timings.condense


def test_the_budget_is_at_most_half_the_request_s_llm_time(service):
    condenser = FakeCondenser()
    service(condenser, llm_timeout_s=4, condense_timeout_s=30).ask(
        Question("And for gift cards?", 3, history=HISTORY))
    assert 1 < condenser.calls[0][2] <= 2


@pytest.mark.parametrize("question,history", [
    ("How long do refunds take?", ()),  # no history
    ("Which payment methods are accepted for invoices?", HISTORY),  # stands alone
])
def test_no_condensing_when_the_question_stands_alone(service, question, history):
    condenser = FakeCondenser()
    answer = service(condenser).ask(Question(question, 3, history=history))
    assert condenser.calls == [] and answer.retrieval_query == question
    assert answer.timings.condense < 5


@pytest.mark.parametrize("reply", [GeneratorFailed("boom"), GeneratorTimeout("slow"), "  \n",
                                   "<think>\nthe user wants", "x" * 600])
def test_a_failed_or_unusable_condensing_falls_back(service, reply, caplog):
    condenser = FakeCondenser(reply)
    answer = service(condenser).ask(Question("And for gift cards?", 3, history=HISTORY))
    assert answer.retrieval_query == retrieval_query("And for gift cards?", HISTORY)
    assert "refund" in answer.retrieval_query and len(condenser.calls) == 1
    assert "model-free rewrite" in caplog.text


def test_no_index_is_a_503_before_any_condensing(service, no_index):
    from app.errors import IndexNotReady

    condenser = FakeCondenser()
    svc = service(condenser, index_dir=no_index.index_dir,
                  database_schema=no_index.database_schema)
    with pytest.raises(IndexNotReady):
        svc.ask(Question("And for gift cards?", 3, history=HISTORY))
    assert condenser.calls == []
