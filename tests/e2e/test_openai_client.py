"""/v1/models and /v1/chat/completions with the official `openai` client against the real
service (uvicorn over HTTP, the starter index, an API key set as a deployment would)."""
from __future__ import annotations

import re

import httpx
import openai
import pytest

from app.service import ABSTAIN_ANSWER
from tests.helpers import STARTER_KEY, assert_citations_are_exact
from tests.service_process import running_service

pytestmark = pytest.mark.slow

KEY = STARTER_KEY
QUESTION = "What does the Business plan cost?"
OFF_TOPIC = "Who won the 1998 football world cup?"


@pytest.fixture(scope="module")
def client(starter) -> openai.OpenAI:
    url, _ = starter
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)


def ask_json(url: str, question: str) -> dict:
    r = httpx.post(f"{url}/ask", json={"question": question},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_models_lists_the_rag_system_as_one_model(client):
    assert [m.id for m in client.models.list()] == ["ragfirst"]
    assert client.models.retrieve("ragfirst").owned_by == "ragfirst"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_completion_carries_the_answer_its_markers_and_its_citations(client, starter):
    url, corpus = starter
    completion = client.chat.completions.create(model="ragfirst", messages=user(QUESTION))
    body = ask_json(url, QUESTION)
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    answer, _, footer = choice.message.content.partition("\n\nSources:\n")
    # The answer is /ask's, and the footer lists exactly the cited sources, in order.
    assert answer == body["answer"] and "$19" in answer
    assert footer.splitlines() == [f"[{c['n']}] {c['path']}" for c in body["citations"]]
    assert {int(n) for n in re.findall(r"\[(\d+)\]", answer)} == \
        {c["n"] for c in body["citations"]}
    # The structured form: /ask's citation objects, exact against the corpus.
    citations = completion.model_extra["citations"]
    assert citations == body["citations"]
    assert_citations_are_exact(corpus, citations)
    extra = completion.model_extra["ragfirst"]
    assert extra["abstained"] is False and extra["generator"] == "extractive"
    assert extra["index_generation"] == body["index_generation"]


def test_streaming_gives_the_same_text_in_pieces_and_citations_at_the_end(client):
    whole = client.chat.completions.create(model="ragfirst", messages=user(QUESTION))
    chunks = list(client.chat.completions.create(model="ragfirst", messages=user(QUESTION),
                                                 stream=True))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) > 2  # the answer arrives in pieces, then the sources
    assert "".join(pieces) == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert last.model_extra["citations"] == whole.model_extra["citations"]
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")


@pytest.mark.parametrize("stream", [False, True])
def test_abstention_says_so_without_sources(client, stream):
    if stream:
        chunks = list(client.chat.completions.create(model="ragfirst", messages=user(OFF_TOPIC),
                                                     stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        extra = chunks[-1].model_extra
    else:
        completion = client.chat.completions.create(model="ragfirst", messages=user(OFF_TOPIC))
        text, extra = completion.choices[0].message.content, completion.model_extra
    assert text == ABSTAIN_ANSWER
    assert extra["citations"] == [] and extra["ragfirst"]["abstained"] is True


def test_the_question_is_the_last_user_message(client):
    messages = [{"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "What does the Business plan cost?"},
                {"role": "assistant", "content": "It costs $19 per seat per month."},
                {"role": "user", "content": [
                    {"type": "text", "text": "How long do I have to get a full refund"},
                    {"type": "text", "text": "on an annual plan?"}]}]
    completion = client.chat.completions.create(model="ragfirst", messages=messages,
                                                temperature=0.7, max_tokens=50, user="u1")
    assert "30 days" in completion.choices[0].message.content
    assert "kestrelbook/refund-policy.md" in {c["path"]
                                              for c in completion.model_extra["citations"]}


@pytest.mark.parametrize("kwargs,error,needle", [
    (dict(model="gpt-4o", messages=user(QUESTION)), openai.NotFoundError, "does not exist"),
    (dict(model="ragfirst", messages=[]), openai.BadRequestError, "messages"),
    (dict(model="ragfirst", messages=[{"role": "system", "content": "hi"}]),
     openai.BadRequestError, "role 'user'"),
    (dict(model="ragfirst", messages=user("   ")), openai.BadRequestError, "empty"),
    (dict(model="ragfirst", messages=user("x" * 2001)), openai.BadRequestError, "2001"),
    (dict(model="ragfirst", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:,"}}]}]),
     openai.BadRequestError, "image_url"),
    (dict(model="ragfirst", messages=user(QUESTION), n=2), openai.BadRequestError, "n"),
])
def test_bad_requests_get_openai_errors(client, kwargs, error, needle):
    with pytest.raises(error) as caught:
        client.chat.completions.create(**kwargs)
    assert needle in caught.value.message


def test_a_wrong_key_is_refused_in_openai_form(starter):
    url, _ = starter
    for key in ("sk-test-7f3c1e0b9e", "wrong", ""):  # same length, differs at the end; short
        bad = openai.OpenAI(base_url=f"{url}/v1", api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.models.list()
        assert caught.value.code == "invalid_api_key"
    r = httpx.post(f"{url}/v1/chat/completions", content=b"{not json",
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


def test_with_an_llm_the_check_findings_and_backend_failures_reach_the_client(
        starter_index, fake_llm):
    """With an LLM behind it: a sentence no source supports is said so in the text a chat UI
    shows; an LLM that fails at once is an HTTP error the SDK does not retry (we already
    did); one that fails mid-stream ends the stream with an error the SDK raises (not a
    silent, truncated answer)."""
    settings, _ = starter_index
    base = fake_llm.base_url("switch")
    with running_service(settings.index_dir, settings.corpus_dir, RAG_GENERATOR="openai",
                         RAG_OPENAI_BASE_URL=base, RAG_OPENAI_MODEL="fake",
                         RAG_LLM_RETRIES="0", RAG_MIN_TERM_COVERAGE="0") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        question = user("How long do I have to get a full refund on an annual plan?")
        fake_llm.set_mode(base, "ok")
        ok = client.chat.completions.create(model="ragfirst", messages=question)
        assert ok.choices[0].message.content.startswith("Refunds take 30 days [1].")
        assert ok.model_extra["ragfirst"]["generator"] == "openai"

        fake_llm.set_mode(base, "halftrue")
        whole = client.chat.completions.create(model="ragfirst", messages=question)
        streamed = "".join(c.choices[0].delta.content or "" for c in
                           client.chat.completions.create(model="ragfirst", messages=question,
                                                          stream=True))
        for text in (whole.choices[0].message.content, streamed):
            _, _, findings = text.partition("\n\nNot supported by the cited sources:\n")
            assert findings == "- The moon is made of green cheese."
        assert whole.model_extra["ragfirst"]["unsupported"] == [
            "The moon is made of green cheese."]

        fake_llm.set_mode(base, "http500")
        before = fake_llm.attempts(base)
        retrying = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=2)
        with pytest.raises(openai.APIStatusError) as caught:
            retrying.chat.completions.create(model="ragfirst", messages=question)
        assert caught.value.status_code == 502 and caught.value.type == "server_error"
        assert caught.value.code == "upstream_error"
        assert fake_llm.attempts(base) - before == 1  # the SDK was told not to retry

        fake_llm.set_mode(base, "streamerror")
        received = []
        with pytest.raises(openai.APIError):
            for chunk in client.chat.completions.create(model="ragfirst", messages=question,
                                                        stream=True):
                received.append(chunk.choices[0].delta.content or "")
        assert "".join(received)  # the delta before the failure arrived


def test_explicit_nulls_are_the_defaults(starter):
    url, _ = starter
    r = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                   timeout=60, json={"model": "ragfirst", "messages": user(QUESTION),
                                     "stream": None, "n": None, "temperature": None})
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"
    for body, needle in (([1, 2], "JSON object"),
                         ({"model": "ragfirst", "messages": [{"role": "user", "content": 5}]},
                          "string or a list"),
                         ({"model": "ragfirst", "messages": [
                             {"role": "user", "content": ["just a string"]}]}, "objects")):
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60,
                       headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 400 and needle in r.json()["error"]["message"], r.text


def test_a_three_turn_conversation_uses_the_earlier_turns(client, starter):
    """A chat UI sends the whole conversation: the follow-up is searched with it, the system
    prompt is ignored, and the answer's own sources are cited."""
    _, corpus = starter
    messages = [{"role": "system", "content": "You are a helpful assistant. Answer in French."},
                {"role": "user", "content": "What uptime does the Enterprise plan guarantee?"}]
    first = client.chat.completions.create(model="ragfirst", messages=messages)
    assert "99.95%" in first.choices[0].message.content
    messages += [{"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "How long do I have to get a full refund on an "
                                             "annual plan?"}]
    second = client.chat.completions.create(model="ragfirst", messages=messages)
    assert "30 days" in second.choices[0].message.content
    assert second.model_extra["ragfirst"]["retrieval_query"].startswith("How long do I have")
    messages += [{"role": "assistant", "content": second.choices[0].message.content},
                 {"role": "user", "content": "And for monthly plans?"}]
    third = client.chat.completions.create(model="ragfirst", messages=messages)
    extra = third.model_extra
    query = extra["ragfirst"]["retrieval_query"]
    assert query.startswith("And for monthly plans?") and "refund" in query
    assert "uptime" not in query  # the older subject is not borrowed from
    assert "7 days" in third.choices[0].message.content
    assert {c["path"] for c in extra["citations"]} == {"kestrelbook/refund-policy.md"}
    assert_citations_are_exact(corpus, extra["citations"])
    streamed = client.chat.completions.create(model="ragfirst", messages=messages, stream=True)
    chunks = list(streamed)
    assert "7 days" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].model_extra["ragfirst"]["retrieval_query"] == query
