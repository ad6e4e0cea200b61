"""Shared fixtures: the embedders, the starter index, settings on temporary folders, the fake
and the real LLM servers, the real embedding server. Shared functions are in tests/helpers.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.embedders import (HashingEmbedder, OpenAIEmbedder, RemoteOptions,
                              SentenceTransformerEmbedder, build_embedder)
from ingest.settings import DEFAULT_MODEL, IngestSettings
from tests.helpers import STARTER_CORPUS


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(monkeypatch):
    """Settings built in a test read the environment: a developer's RAG_API_KEY or
    RAG_GENERATOR must not leak into them (child processes get subprocess_env's). The tests'
    own switches (RAG_TESTS_*) stay."""
    for name in list(os.environ):
        if (name.startswith("RAG_") and not name.startswith("RAG_TESTS_")) \
                or name == "OPENAI_API_KEY":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def real_embedder():
    """all-MiniLM-L6-v2 from the bundled package on the default backend (RAG_EMBED_BACKEND,
    what the service builds), loaded once per test session. Its ONNX export is cached in the
    default RAG_EMBED_CACHE_DIR, as a user's is: exported on a machine's first run."""
    embedder = build_embedder(IngestSettings())
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def torch_embedder() -> SentenceTransformerEmbedder:
    """The same model on PyTorch (RAG_EMBED_BACKEND=torch)."""
    embedder = SentenceTransformerEmbedder()
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def onnx_embedder():
    """The same model on ONNX Runtime in float32 (RAG_EMBED_BACKEND=onnx)."""
    embedder = build_embedder(IngestSettings(embed_backend="onnx"))
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def starter_index(tmp_path_factory, real_embedder):
    """A copy of the starter corpus, ingested with the real model once per test session.
    Returns (settings, report). Tests must not modify it."""
    import shutil

    from ingest.sync import run_ingest

    base = tmp_path_factory.mktemp("starter")
    corpus = base / "corpus"
    shutil.copytree(STARTER_CORPUS, corpus)
    settings = IngestSettings(corpus_dir=corpus, index_dir=base / "index")
    return settings, run_ingest(settings, real_embedder)


@pytest.fixture(scope="session")
def starter_service(starter_index):
    """The real service (`python -m app` over HTTP) on the session's starter index, with an API
    key (tests.helpers.STARTER_KEY): one model load shared by the e2e modules that only ask.
    Tests must not change its corpus or index."""
    from tests.helpers import STARTER_KEY
    from tests.service_process import running_service

    settings, _ = starter_index
    with running_service(settings.index_dir, settings.corpus_dir,
                         RAG_API_KEY=STARTER_KEY) as url:
        yield url


@pytest.fixture(scope="session")
def remote_embedder(embedding_server) -> OpenAIEmbedder:
    """The remote embedder against llama.cpp's server embedding with all-MiniLM-L6-v2."""
    return OpenAIEmbedder(RemoteOptions(embedding_server.base_url, embedding_server.model,
                                        tokenizer=DEFAULT_MODEL))


@pytest.fixture
def hashing_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    return IngestSettings(corpus_dir=corpus, index_dir=tmp_path / "index", embedder="hashing")


# Fixtures that live in their own modules, shared by several test files.
from tests.fake_llm import fake_llm  # noqa: E402,F401
from tests.llm_server import llama_server  # noqa: E402,F401
from tests.postgres import pg_url  # noqa: E402,F401
from tests.embed_server import embedding_server  # noqa: E402,F401
