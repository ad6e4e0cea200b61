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
