"""Requests an attacker (or a broken client) sends, in-process: each gets a documented 4xx in the
error shape of its path, never a 500; nothing it sent reaches the log; nothing big is echoed;
no body names the service's folders or its LLM backend's address. The requests are in
tests/hostile.py; tests/e2e/test_hostile_server.py sends them to the real server too, and
tests/e2e/test_limits.py what only a real server sees (slow headers, a trickled body, a huge
announced body)."""
from __future__ import annotations

import json
import logging

import pytest

from tests.fake_llm import FakeLLM
from tests.helpers import REFUND_QUESTION, serving
from tests.hostile import (ASK_BAD_BODIES, BAD_PATH_FILTERS, SECRET_WORD, V1_BAD_CONTENT, chat,
                           nested, raw)


@pytest.fixture
def logged(caplog):
    """Everything the service logs during a test, as one text."""
    caplog.set_level(logging.DEBUG)
    return lambda: "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')} {r.exc_text or ''}"
                             for r in caplog.records)


@pytest.mark.parametrize("path", ["/ask", "/v1/chat/completions"])
def test_deeply_nested_json_is_refused(client, path):
    r = client.post(path, content=nested(1000), headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert ("error" in body) if path.startswith("/v1/") else ("detail" in body)


@pytest.mark.parametrize("payload,needle", V1_BAD_CONTENT)
def test_v1_bad_content_is_a_400(client, payload, needle, logged):
    r = client.post("/v1/chat/completions", content=raw(payload),
                    headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]["message"]
    assert SECRET_WORD not in logged()


@pytest.mark.parametrize("body", ASK_BAD_BODIES)
def test_ask_refuses_them_with_a_422_and_logs_none_of_it(client, body, logged):
    r = client.post("/ask", content=raw(body), headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    problems = r.json()["detail"]
    assert problems and all({"loc", "msg"} <= set(p) for p in problems)
    assert SECRET_WORD not in logged()


@pytest.mark.parametrize("path,needle", BAD_PATH_FILTERS)
def test_a_path_filter_that_can_never_match_says_why(client, path, needle):
    r = client.post("/ask", json={"question": REFUND_QUESTION, "filters": {"path": path}})
    assert r.status_code == 422 and needle in json.dumps(r.json())


def test_a_rebuild_flag_must_be_a_boolean(client):
    assert client.post("/ingest", json={"rebuild": 0}).status_code == 422
    assert client.post("/ingest", json={"rebuild": "true"}).status_code == 422


def test_a_long_question_is_refused_without_being_echoed(client):
    r = client.post("/ask", json={"question": "refund " * 3000})
    assert r.status_code == 422 and len(r.content) < 2000  # not the 21,000 characters sent


@pytest.mark.parametrize("path", ["/ask", "/v1/chat/completions", "/ingest"])
def test_a_body_over_the_limit_is_a_413_in_the_path_s_shape(small_index, path):
    settings = small_index.model_copy(update={"max_request_bytes": 4096})
    with serving(settings) as client:
        r = client.post(path, content=b'{"question": "' + b"x" * 10_000 + b'"}',
                        headers={"content-type": "application/json"})
    assert r.status_code == 413
    message = r.json()["error"]["message"] if path.startswith("/v1/") else r.json()["detail"]
    assert "RAG_MAX_REQUEST_BYTES" in message


def test_unknown_paths_answer_in_their_shape(client):
    v1 = client.get("/v1/embeddings")
    assert v1.status_code == 404 and v1.json()["error"]["code"] == "not_found"
    other = client.get("/nothing-here")
    assert other.status_code == 404 and "detail" in other.json()
    wrong = client.get("/ask")
    assert wrong.status_code == 405 and "detail" in wrong.json()


def test_an_llm_failure_names_no_address(small_index, logged):
    url = FakeLLM.closed_url()
    settings = small_index.model_copy(update={"generator": "openai", "openai_base_url": url,
                                              "llm_timeout_s": 3.0, "llm_retries": 0})
    with serving(settings) as client:
        r = client.post("/ask", json={"question": REFUND_QUESTION})
        v1 = client.post("/v1/chat/completions", json=chat(REFUND_QUESTION))
    address = url.split("//", 1)[1].split("/", 1)[0]  # 127.0.0.1:PORT
    assert r.status_code == v1.status_code == 502
    assert "the LLM backend" in r.json()["detail"] and address not in r.text + v1.text
    assert address in logged()  # the operator still finds it


def test_probes_and_errors_name_no_folder(no_index, tmp_path):
    with serving(no_index) as client:
        ready = client.get("/readyz")
        ask = client.post("/ask", json={"question": REFUND_QUESTION})
        (tmp_path / "corpus").rmdir()
        ingest = client.post("/ingest")
        after = client.get("/readyz")
    assert ready.status_code == ask.status_code == after.status_code == 503
    assert ingest.status_code == 409
    for r in (ready, ask, ingest, after):
        assert str(tmp_path) not in r.text, r.text
    assert "make ingest" in ready.json()["detail"]
    assert "corpus folder `corpus` does not exist" in after.json()["ingest"]["last"]["error"]


def test_an_ingest_that_cannot_write_is_a_503_naming_no_path(small_index, tmp_path):
    """SQLite: a file where the index folder should be. PostgreSQL: a server that is not
    there (the message names neither the socket's folder nor the password)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the index folder should be")
    broken = small_index.model_copy(update={
        "index_dir": blocker / "index",
        "database_url": f"postgresql://ragfirst:s3cret@/ragfirst?host={tmp_path}/nothing"})
    with serving(broken) as client:
        r = client.post("/ingest")
        ask = client.post("/ask", json={"question": "refunds?"})
    assert r.status_code == 503 and str(tmp_path) not in r.text and "s3cret" not in r.text
    assert ask.status_code == 503 and str(tmp_path) not in ask.text
    expected = "cannot be written" if broken.store == "sqlite" else "cannot be reached"
    assert expected in r.json()["detail"], r.json()


def test_many_problems_are_counted_not_listed(client):
    many = {"question": "refunds?", "filters": {"type": ["x"] * 50_000}}
    r = client.post("/ask", json=many)
    assert r.status_code == 422 and len(r.content) < 4000
    keys = {f"k{i}": 1 for i in range(200)}  # 200 unknown fields: 200 problems
    r = client.post("/ask", json={"question": "refunds?", **keys})
    problems = r.json()["detail"]
    assert r.status_code == 422 and len(problems) == 21
    assert problems[-1]["msg"] == "and 180 more problems"


def test_a_huge_field_name_is_cut_in_the_error(client):
    r = client.post("/ask", json={"question": "refunds?", "x" * 100_000: 1})
    assert r.status_code == 422 and len(r.content) < 2000
