"""The model-free follow-up rewrite and the condensing prompt (app.conversation)."""
from __future__ import annotations

import pytest

from app.answer import ABSTAIN_ANSWER
from app.conversation import (MAX_BORROWED, Turn, clean_condensed, leans_on_context,
                              retrieval_query)
from app.prompting import CONDENSE_HISTORY_TOKENS, condense_messages, count_tokens

REFUND = (Turn("user", "How long do I have to get a full refund on an annual plan?"),
          Turn("assistant", "Annual plans can be refunded in full within 30 days [1]."))


@pytest.mark.parametrize("question", [
    "And for monthly plans?", "What about the Enterprise plan?", "How long does it take?",
    "Is that also true for teams?", "Why?", "Monthly plans?", "Also for seats bought later?",
    "Does the same apply there?"])
def test_follow_ups_lean_on_the_conversation(question):
    assert leans_on_context(question, REFUND)
    query = retrieval_query(question, REFUND)
    assert query.startswith(question) and "refund" in query and "annual" in query


@pytest.mark.parametrize("question", [
    "What is reciprocal rank fusion?", "What is HNSW?", "Who can export audit logs?",
    "How long do deleted pages stay in the Trash?",
    "Also, how many seats can a Team workspace have?", "So what is reciprocal rank fusion?",
    "And what does nDCG@10 measure?",  # a continuation that opens a new subject
    "How long do I have to get a full refund on an annual plan?"])
def test_a_question_that_stands_alone_is_searched_as_it_is(question):
    assert not leans_on_context(question, REFUND)
    assert retrieval_query(question, REFUND) == question


def test_without_history_nothing_is_rewritten():
    assert retrieval_query("And for monthly plans?", ()) == "And for monthly plans?"


def test_only_user_turns_are_borrowed_from_the_latest_first_and_bounded():
    history = (Turn("user", "Tell me about alpha bravo charlie"),
               Turn("assistant", "Zulu yankee xray whiskey [1]."),
               Turn("user", "And for delta echo foxtrot golf hotel india juliet kilo lima mike?"))
    query = retrieval_query("What about it?", history)
    borrowed = query.removeprefix("What about it? ").split()
    assert borrowed[:3] == ["delta", "echo", "foxtrot"] and "zulu" not in query.lower()
    assert len(borrowed) == MAX_BORROWED and "alpha" in borrowed
    # a word the question already holds is not added twice
    assert retrieval_query("And the refund for monthly plans?", REFUND).count("refund") == 1


def test_an_older_user_turn_is_not_borrowed_from():
    history = (Turn("user", "What is the uptime of the Business plan?"),
               Turn("assistant", "99.9% [1]."), *REFUND)
    query = retrieval_query("And for monthly plans?", history)
    assert "refund" in query and "uptime" not in query


def test_condense_messages_keep_the_latest_turns_within_the_budget():
    long = "word " * CONDENSE_HISTORY_TOKENS
    history = (Turn("user", "first " + long), Turn("assistant", "second " + long), *REFUND)
    system, user = condense_messages("And for monthly plans?", history)
    assert system["role"] == "system" and "standalone" in system["content"]
    body = user["content"]
    assert "Last question: And for monthly plans?" in body
    assert "User: How long do I have" in body and "[1]" not in body  # markers dropped
    assert "first" not in body and count_tokens(body) < CONDENSE_HISTORY_TOKENS + 60


@pytest.mark.parametrize("text,expected", [
    ("How long is the refund window for monthly plans?",
     "How long is the refund window for monthly plans?"),
    ('Standalone question: "What is the refund window for monthly plans?"\nExtra line',
     "What is the refund window for monthly plans?"),
    ("\n\n  What about refunds?  ", "What about refunds?"),
    ("Sure! Here is the rewritten question:\nWhat is the refund window for monthly plans?",
     "What is the refund window for monthly plans?"),
    ("<think>The user means refunds.</think>\nHow long are monthly refunds?",
     "How long are monthly refunds?"),
    ("**Standalone question:** How long are monthly refunds?", "How long are monthly refunds?"),
    ("Monthly plans can be refunded within 7 days.\nHow long are monthly refunds?",
     "How long are monthly refunds?"),  # the question, not the answer it also wrote
    ("<think>\nthe user wants", None), ("", None), ("   \n ", None), ("?", None),
    ("a" * 600, None)])
def test_clean_condensed(text, expected):
    assert clean_condensed(text) == expected


def test_a_pointer_word_is_not_counted_as_the_question_s_own_term():
    history = (Turn("user", "Which header should our webhook receiver verify?"),
               Turn("assistant", "X-Kestrel-Signature-256 [1]."))
    query = retrieval_query("How long will the old one keep working?", history)
    assert "webhook" in query and "header" in query


def test_the_last_answer_tops_up_a_user_turn_with_few_words():
    history = (Turn("user", "What is RAFT?"),
               Turn("assistant", "Retrieval-augmented fine-tuning: fine-tuning the generator "
                                 "on retrieved passages [1]."))
    query = retrieval_query("Who published it, and when?", history)
    assert query.split()[5:8] == ["RAFT", "Retrieval", "augmented"]
    # a user turn with enough words of its own is not topped up from the answer
    assert "Annual" not in retrieval_query("And for monthly plans?", REFUND)


def test_markers_and_an_abstention_are_not_borrowed_from_the_last_answer():
    history = (Turn("user", "Why?"), Turn("assistant", "It is in the Business plan [2]."))
    assert retrieval_query("Why?", history) == "Why? Business plan"
    abstained = (Turn("user", "Who is Zorblax?"), Turn("assistant", ABSTAIN_ANSWER))
    assert retrieval_query("Why?", abstained) == "Why? Zorblax"
