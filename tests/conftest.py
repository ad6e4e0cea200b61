"""Shared fixtures: the two embedders, settings on temporary folders, corpus helpers."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ingest.embedders import HashingEmbedder, SentenceTransformerEmbedder
from ingest.settings import IngestSettings

ROOT = Path(__file__).resolve().parent.parent
STARTER_CORPUS = ROOT / "corpus"


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from the bundled package, loaded once per test session."""
    embedder = SentenceTransformerEmbedder()
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


@pytest.fixture
def hashing_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    return IngestSettings(corpus_dir=corpus, index_dir=tmp_path / "index", embedder="hashing")


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child `python -m ingest`: this interpreter's, no RAG_ leftovers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


PYTHON = sys.executable


# Fixtures that live in their own modules, shared by several test files.
from tests.fake_llm import fake_llm  # noqa: E402,F401
from tests.llm_server import llama_server  # noqa: E402,F401
