"""/ask against the real service: `python -m app` under uvicorn, over HTTP, on the starter
corpus indexed with the real model. Status codes, schemas and error bodies are checked
in-process in tests/app/api/test_ask.py."""
from __future__ import annotations

import httpx
import pytest

from tests.helpers import STARTER_KEY, assert_citations_are_exact
from tests.service_process import running_service, sse_events

pytestmark = pytest.mark.slow


AUTH = {"Authorization": f"Bearer {STARTER_KEY}"}


def ask(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/ask", json=body, headers=AUTH, timeout=60)



@pytest.mark.parametrize("question,expected_path,fact", [
    ("How long do I have to get a full refund on an annual plan?",
     "kestrelbook/refund-policy.md", "30 days"),
    ("What is the monthly uptime commitment of the Business plan?",
     "kestrelbook/service-level-agreement.html", "99.9%"),
    ("When will API v1 be removed?", None, "30 June 2026"),
])
def test_answers_with_exact_citations(starter, question, expected_path, fact):
    url, corpus = starter
    r = ask(url, question=question)
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["abstained"] and fact in body["answer"]
    assert body["citations"] and body["generator"] == "extractive" and body["model"] is None
    if expected_path:
        assert expected_path in {c["path"] for c in body["citations"]}
    assert_citations_are_exact(corpus, body["citations"])
    assert {c["n"] for c in body["citations"]} == {
        int(n) for n in __import__("re").findall(r"\[(\d+)\]", body["answer"])}
    assert set(body["timings_ms"]) == {"condense", "embed", "retrieve", "generate", "total"}
    assert body["index_generation"] >= 1 and body["unsupported"] == []


def test_pdf_citation_has_its_page(starter):
    url, corpus = starter
    body = ask(url, question="How long is the default session timeout?",
               filters={"type": "pdf"}).json()
    assert body["citations"] and all(c["path"].endswith(".pdf") for c in body["citations"])
    assert all(isinstance(c["page"], int) and c["page"] >= 1 for c in body["citations"])
    assert "14 days" in body["answer"]
    assert_citations_are_exact(corpus, body["citations"])


@pytest.mark.parametrize("question", [
    "What is the boiling point of tungsten in kelvin?",  # off-topic: nothing similar
    "Does Kestrelbook have an office in Tokyo?",  # on-topic, but Tokyo is nowhere in it
])
def test_abstains_when_the_corpus_has_no_answer(starter, question):
    url, _ = starter
    body = ask(url, question=question).json()
    assert body["abstained"] and body["citations"] == []
    assert "do not contain" in body["answer"]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_each_retrieval_mode(starter, mode):
    url, _ = starter
    body = ask(url, question="reciprocal rank fusion constant k", mode=mode, top_k=3).json()
    assert any(c["path"] == "guides/hybrid-search-and-rrf.html" for c in body["citations"])


def test_filters_restrict_the_sources(starter):
    url, _ = starter
    body = ask(url, question="How is data deleted?", filters={"path": "guides/"}).json()
    assert body["citations"] and all(c["path"].startswith("guides/") for c in body["citations"])
    body = ask(url, question="refund", filters={"path": "kestrelbook/*.md", "type": ["md"]}).json()
    assert body["citations"] and all(c["path"].startswith("kestrelbook/") and
                                     c["path"].endswith(".md") for c in body["citations"])


def test_streaming_sends_deltas_then_one_done_event(starter):
    url, corpus = starter
    status, events = sse_events(url, {"question": "How long are pages kept in the Trash?"},
                                headers=AUTH)
    assert status == 200
    kinds = [e for e, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"delta"} and len(kinds) >= 2
    done = events[-1][1]
    assert "".join(d["text"] for _, d in events[:-1]) == done["answer"]
    assert done["citations"] and set(done["timings_ms"]) >= {"embed", "retrieve", "generate"}
    assert_citations_are_exact(corpus, done["citations"])


def test_a_new_generation_is_served_without_a_restart(tmp_path, real_embedder):
    """Ingest commits while the service runs: the next question sees the new file, and a
    deleted file stops being cited."""
    from ingest.settings import IngestSettings
    from ingest.sync import run_ingest

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "base.md").write_text("# Base\n\nThe office cafeteria opens at eight in the "
                                    "morning and serves soup on Fridays.\n")
    settings = IngestSettings(corpus_dir=corpus, index_dir=tmp_path / "index")
    run_ingest(settings, real_embedder)
    question = "What is the maximum payload of the Osprey-7 delivery drone?"
    with running_service(settings.index_dir, corpus, RAG_WATCH="false") as url:  # make ingest's path
        first = ask(url, question=question).json()
        assert first["abstained"] and first["index_generation"] == 1
        (corpus / "drone.md").write_text(
            "# Osprey-7\n\nThe Osprey-7 delivery drone carries a maximum payload of 4.2 "
            "kilograms over a range of 31 kilometres.\n")
        run_ingest(settings, real_embedder)
        second = ask(url, question=question).json()
        assert second["index_generation"] == 2 and not second["abstained"]
        assert "4.2 kilograms" in second["answer"]
        assert [c["path"] for c in second["citations"]] == ["drone.md"]
        (corpus / "drone.md").unlink()
        run_ingest(settings, real_embedder)
        third = ask(url, question=question).json()
        assert third["index_generation"] == 3
        assert "drone.md" not in {c["path"] for c in third["citations"]}
