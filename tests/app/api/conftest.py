"""The app in-process (FastAPI's TestClient runs its lifespan and calls it over ASGI): fast
contract tests of status codes, schemas and error bodies, on a small corpus indexed with the
hashing embedder, once on each store (SQLite and PostgreSQL: every test here runs on both). What
only a real server shows (streaming over a socket, the watcher, shutdown, the browser) is tested
in tests/e2e."""
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
from tests.postgres import drop_schema, new_schema


def _store(request) -> dict:
    """The settings that put an index on the store under test (a schema of its own on the
    session's PostgreSQL)."""
    if request.param == "sqlite":
        return {}
    return {"store": "postgres", "database_url": request.getfixturevalue("pg_url"),
            "database_schema": new_schema()}


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def small_index(request, tmp_path_factory) -> Settings:
    """The small corpus, ingested once per store; tests must not write to it (copy it:
    `own_index`)."""
    base = tmp_path_factory.mktemp("small")
    for name, text in SMALL_CORPUS.items():
        write(base / "corpus", name, text)
    settings = Settings(corpus_dir=base / "corpus", index_dir=base / "index",
                        embedder="hashing", watch=False,
                        # the hashing embedder's cosines are low: abstain on term coverage
                        abstain_threshold=-1.0, **_store(request))
    run_ingest(settings, HashingEmbedder())
    return settings


def _elsewhere(small_index: Settings, tmp_path) -> Settings:
    """The small index's settings on a new corpus folder and a new (empty) index."""
    return small_index.model_copy(update={"corpus_dir": tmp_path / "corpus",
                                          "index_dir": tmp_path / "index",
                                          "database_schema": new_schema()})


@pytest.fixture
def own_index(small_index, tmp_path) -> Iterator[Settings]:
    """A private copy of the small index and corpus, for a test that changes them (on
    PostgreSQL: the copied corpus ingested into a schema of its own)."""
    import shutil

    shutil.copytree(small_index.corpus_dir, tmp_path / "corpus")
    own = _elsewhere(small_index, tmp_path)
    if own.store == "sqlite":
        shutil.copytree(small_index.index_dir, tmp_path / "index")
    else:
        run_ingest(own, HashingEmbedder())
    yield own
    if own.store == "postgres":
        drop_schema(own.database_url, own.database_schema)


@pytest.fixture
def no_index(small_index, tmp_path) -> Iterator[Settings]:
    """The small index's settings on an empty corpus folder and no index yet."""
    (tmp_path / "corpus").mkdir()
    settings = _elsewhere(small_index, tmp_path)
    yield settings
    if settings.store == "postgres":
        drop_schema(settings.database_url, settings.database_schema)


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
