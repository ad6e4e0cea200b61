"""RAG_EMBEDDER=openai end to end: `python -m ingest` and the service (`python -m app` over HTTP)
embedding through llama.cpp's real server with all-MiniLM-L6-v2; and a service whose embedding
server is down (our fault server, stopped): it starts, and a question gets one clear 503."""
from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import pytest

from tests.fake_llm import start_fake_llm
from tests.helpers import PYTHON, ROOT, STARTER_CORPUS, subprocess_env, write
from tests.service_process import running_service, service_log

pytestmark = pytest.mark.slow
FILES = ["refund-policy.md", "release-notes-3.0-to-3.2.md", "pricing-and-plans.html",
         "support-hours-and-escalation.md"]


def ingest(corpus, index, **env: str) -> dict:
    out = subprocess.run([PYTHON, "-m", "ingest", "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600,
                         env=subprocess_env(RAG_CORPUS_DIR=str(corpus), RAG_INDEX_DIR=str(index),
                                            **env))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_ingest_and_answer_through_llama_cpps_embedding_server(tmp_path, embedding_server):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    for name in FILES:
        write(corpus, name, (STARTER_CORPUS / "kestrelbook" / name).read_bytes())
    remote = {"RAG_EMBEDDER": "openai", "RAG_EMBED_BASE_URL": embedding_server.base_url,
              "RAG_EMBED_MODEL": embedding_server.model}
    report = ingest(corpus, index, **remote)
    assert sorted(report["files"]["added"]) == sorted(FILES)
    assert report["chunks"]["embedded"] > len(FILES) and report["chunks"]["truncated"] == 0
    with running_service(index, corpus, **remote) as url:
        r = httpx.post(f"{url}/ask", json={"question": "When will API v1 be removed?"},
                       timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body["abstained"] and "30 June 2026" in body["answer"]
        assert body["citations"][0]["path"] == "release-notes-3.0-to-3.2.md"
    assert ingest(corpus, index, **remote)["files"]["unchanged"] == sorted(FILES)


def test_a_service_whose_embedding_server_is_down_starts_and_answers_503(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(STARTER_CORPUS / "kestrelbook", corpus)
    fake = start_fake_llm()
    try:
        remote = {"RAG_EMBEDDER": "openai", "RAG_EMBED_BASE_URL": fake.base_url("ok"),
                  "RAG_EMBED_MODEL": "all-MiniLM-L6-v2", "RAG_EMBED_RETRIES": "1"}
        ingest(corpus, index, **remote)
    finally:
        fake.close()  # now nothing listens there
    with running_service(index, corpus, **remote) as url:
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
        r = httpx.post(f"{url}/ask", json={"question": "What does the Business plan cost?"},
                       timeout=60)
        assert r.status_code == 503
        detail = r.json()["detail"]
        assert detail.startswith("the embedding server: cannot connect") and "127.0.0.1" not in detail
        chat = httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
            "model": "ragfirst", "messages": [{"role": "user", "content": "Business plan?"}]})
        assert chat.status_code == 503 and "the embedding server" in chat.json()["error"]["message"]
        log = service_log(index, url).read_text()
    assert "the embedding server does not answer yet" in log  # the warm-up said why
