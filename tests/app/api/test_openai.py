"""/v1 in-process: the model list, the completion and its chunks with their citations, and
errors in OpenAI's shape. The official client against a real server: tests/e2e."""
from __future__ import annotations

import json

import pytest

from app.errors import GeneratorFailed
from tests.helpers import OFF_TOPIC, REFUND_QUESTION, serving, sse


def chat(content, **extra) -> dict:
    return {"model": "ragfirst", "messages": [{"role": "user", "content": content}], **extra}


def test_models_lists_one_model_and_refuses_others(client):
    r = client.get("/v1/models")
    assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == ["ragfirst"]
    assert client.get("/v1/models/ragfirst").json()["object"] == "model"
    missing = client.get("/v1/models/gpt-4o")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_a_completion_carries_the_answer_sources_and_citations(client):
    r = client.post("/v1/chat/completions", json=chat(REFUND_QUESTION))
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "ragfirst"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    answer, _, footer = choice["message"]["content"].partition("\n\nSources:\n")
    assert "30 days" in answer and "[1] kb/refunds.md" in footer
    assert body["citations"] and body["citations"][0]["path"] == "kb/refunds.md"
    assert set(body["ragfirst"]) == {"abstained", "unsupported", "invalid_citations",
                                     "generator", "model", "index_generation", "index_id",
                                     "retrieval_query", "timings_ms"}


def test_a_streamed_completion_ends_with_the_citations_and_done(client):
    r = client.post("/v1/chat/completions", json=chat(REFUND_QUESTION, stream=True))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    data = [d for _, d in sse(r)]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert "30 days" in text and "\n\nSources:\n[1] kb/refunds.md" in text
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and last["citations"]


def test_an_abstention_is_an_ordinary_answer(client):
    body = client.post("/v1/chat/completions", json=chat(OFF_TOPIC)).json()
    assert body["citations"] == [] and body["ragfirst"]["abstained"] is True
    assert "do not contain" in body["choices"][0]["message"]["content"]


@pytest.mark.parametrize("payload,needle,code", [
    (b"{not json", "not valid JSON", None),
    (b"[1, 2]", "JSON object", None),
    (chat("hi", n=2), "n", None),
    ({"model": "ragfirst", "messages": []}, "messages", None),
    ({"model": "ragfirst", "messages": [{"role": "system", "content": "hi"}]}, "role 'user'",
     None),
    (chat("   "), "empty", None),
    (chat("x" * 2001), "2001", "context_length_exceeded"),
    (chat([{"type": "image_url", "image_url": {"url": "data:,"}}]), "image_url", None),
    (chat(["not an object"]), "content parts", None),
    (chat(7), "string or a list", None),
])
def test_bad_requests_are_400_in_openai_shape(client, payload, needle, code):
    kwargs = {"content": payload} if isinstance(payload, bytes) else {"json": payload}
    r = client.post("/v1/chat/completions", **kwargs)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert needle in error["message"] and error["type"] == "invalid_request_error"
    assert error["code"] == code


def test_explicit_nulls_are_the_defaults(client):
    r = client.post("/v1/chat/completions", json=chat(REFUND_QUESTION, stream=None, n=None))
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"


def test_an_llm_failure_is_502_in_openai_shape(failing):
    with failing(GeneratorFailed("LLM backend answered HTTP 500")) as client:
        r = client.post("/v1/chat/completions", json=chat(REFUND_QUESTION))
    assert r.status_code == 502 and r.headers["x-should-retry"] == "false"
    assert r.json()["error"] == {"message": "LLM backend answered HTTP 500",
                                 "type": "server_error", "param": None,
                                 "code": "upstream_error"}


def test_a_failure_mid_stream_is_an_error_chunk(failing):
    with failing(GeneratorFailed("cut off"), pieces=["Annual "]) as client:
        r = client.post("/v1/chat/completions", json=chat(REFUND_QUESTION, stream=True))
    data = [d for _, d in sse(r)]
    assert json.loads(data[-1])["error"]["code"] == "upstream_error" and "[DONE]" not in data


def test_no_index_is_503_index_not_ready(no_index):
    with serving(no_index) as client:
        r = client.post("/v1/chat/completions", json=chat("anything"))
    assert r.status_code == 503 and r.json()["error"]["code"] == "index_not_ready"


def test_the_messages_before_the_last_user_one_are_the_history():
    from app.api.routes.openai import ChatRequest, _history

    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    req = ChatRequest.model_validate({"model": "ragfirst", "messages": [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": [{"type": "text", "text": "Refunds on annual plans?"}, image]},
        {"role": "assistant", "content": "Within 30 days [1].\n\nSources:\n[1] refund-policy.md"},
        {"role": "tool", "content": "ignored"},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "   "},
        {"role": "user", "content": "x" * 9000},
        {"role": "user", "content": "And for monthly plans?"}]})
    turns = _history(req)
    assert [(t.role, t.content[:24]) for t in turns] == [
        ("user", "Refunds on annual plans?"), ("assistant", "Within 30 days [1]."),
        ("user", "x" * 24)]
    assert turns[1].content == "Within 30 days [1]." and len(turns[2].content) == 8000


def test_only_the_latest_fifty_turns_are_kept():
    from app.api.routes.openai import ChatRequest, _history

    messages = [{"role": ("user", "assistant")[i % 2], "content": f"turn {i}"}
                for i in range(60)] + [{"role": "user", "content": "And then?"}]
    turns = _history(ChatRequest.model_validate({"model": "ragfirst", "messages": messages}))
    assert len(turns) == 50 and turns[0].content == "turn 10" and turns[-1].content == "turn 59"


def test_an_image_in_an_earlier_message_is_not_refused(client):
    body = {"model": "ragfirst", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": "I cannot see images."},
        {"role": "user", "content": REFUND_QUESTION}]}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["ragfirst"]["retrieval_query"] == REFUND_QUESTION


def test_an_earlier_message_that_is_not_valid_unicode_is_a_400(client):
    body = ('{"model": "ragfirst", "messages": [{"role": "user", "content": "refund \\ud800"},'
            ' {"role": "user", "content": "And for monthly plans?"}]}')
    r = client.post("/v1/chat/completions", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "messages[0]" and "lone surrogate" in error["message"]
