"""The app in-process (FastAPI's TestClient runs its lifespan and calls it over ASGI): fast
contract tests of status codes, schemas and error bodies, on a small corpus indexed with the
hashing embedder. What only a real server shows (streaming over a socket, the watcher, shutdown,
the browser) is tested in tests/e2e."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import pytest
from fastapi.testclient import TestClient

from app.errors import GeneratorFailed
from app.service import RagService
from app.settings import Settings
from ingest.embedders import HashingEmbedder
from ingest.sync import run_ingest
from tests.helpers import SMALL_CORPUS, FailingGenerator, serving, write

@pytest.fixture(scope="session")
def small_index(tmp_path_factory) -> Settings:
    """The small corpus, ingested once; tests must not write to it (copy it: `own_index`)."""
    base = tmp_path_factory.mktemp("small")
    for name, text in SMALL_CORPUS.items():
        write(base / "corpus", name, text)
    settings = Settings(corpus_dir=base / "corpus", index_dir=base / "index",
                        embedder="hashing", watch=False,
                        # the hashing embedder's cosines are low: abstain on term coverage
                        abstain_threshold=-1.0)
    run_ingest(settings, HashingEmbedder())
    return settings


@pytest.fixture
def own_index(small_index, tmp_path) -> Settings:
    """A private copy of the small index and corpus, for a test that changes them."""
    import shutil

    shutil.copytree(small_index.corpus_dir, tmp_path / "corpus")
    shutil.copytree(small_index.index_dir, tmp_path / "index")
    return small_index.model_copy(update={"corpus_dir": tmp_path / "corpus",
                                          "index_dir": tmp_path / "index"})


@pytest.fixture
def no_index(small_index, tmp_path) -> Settings:
    """The small index's settings on an empty corpus folder and no index yet."""
    (tmp_path / "corpus").mkdir()
    return small_index.model_copy(update={"corpus_dir": tmp_path / "corpus",
                                          "index_dir": tmp_path / "index"})


@pytest.fixture
def client(small_index) -> Iterator[TestClient]:
    with serving(small_index) as c:
        yield c


@pytest.fixture
def failing(small_index):
    """A client whose LLM fails with the given error (after the given pieces)."""
    @contextmanager
    def make(error: GeneratorFailed, pieces: Sequence[str] = ()) -> Iterator[TestClient]:
        service = RagService.from_settings(small_index, generator=FailingGenerator(error, pieces))
        with serving(small_index, service) as c:
            yield c
    return make
