"""The reader seam's contract (ingest.store.reader), run against every backend: what app/ may rely
on, whatever holds the index. Each backend is a fixture param; the index is written the way users
write it, with run_ingest, and read only through open_reader.

SQLite-only behaviour (the derived FAISS file) is in test_sqlite_snapshot.py; PostgreSQL-only
behaviour (the HNSW index, the advisory lock) in test_postgres_store.py."""
from __future__ import annotations

import functools
import shutil
from contextlib import closing

import numpy as np
import pytest

from ingest.embedders import HashingEmbedder
from ingest.errors import IndexMismatchError, IndexNotFoundError
from ingest.settings import IngestSettings
from ingest.store import ChunkFilter, IndexParams, open_reader
from ingest.sync import run_ingest
from tests.helpers import open_with_memory_index, write
from tests.postgres import drop_schema, new_schema

EMBEDDER = HashingEmbedder()


@pytest.fixture(params=["sqlite", "sqlite-memory", "sqlite-hnsw", "postgres"])
def backend(request, tmp_path) -> IngestSettings:
    """Settings of an empty index on the backend under test, over an empty corpus.
    `sqlite`: BM25 by FTS5 on every read (RAG_LEXICAL_INDEX=fts5); `sqlite-memory`: by the
    in-memory index, each snapshot opened once its commit's index is built (see `reader`);
    `sqlite-hnsw`: SQLite with its HNSW index from the first chunk (RAG_ANN_MIN_CHUNKS=1)."""
    (tmp_path / "corpus").mkdir()
    extra = {}
    if request.param in ("sqlite", "sqlite-hnsw"):
        extra = {"lexical_index": "fts5"}
    if request.param == "sqlite-hnsw":
        extra["ann_min_chunks"] = 1
    if request.param == "postgres":
        extra = {"store": "postgres", "database_url": request.getfixturevalue("pg_url"),
                 "database_schema": new_schema()}
    settings = IngestSettings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index",
                              embedder="hashing", **extra)
    yield settings
    if settings.store == "postgres":
        drop_schema(settings.database_url, settings.database_schema)
    assert not (tmp_path / "index").exists() or settings.store == "sqlite", \
        "a PostgreSQL index wrote to RAG_INDEX_DIR"


def wipe(settings: IngestSettings) -> None:
    """The backend's whole index, gone (on SQLite: its folder; on PostgreSQL: its schema)."""
    if settings.store == "postgres":
        drop_schema(settings.database_url, settings.database_schema)
    else:
        shutil.rmtree(settings.index_dir)


def params(settings: IngestSettings, **changes) -> IndexParams:
    values = {"model_id": EMBEDDER.model_id, "chunk_tokens": settings.chunk_tokens,
              "chunk_overlap": settings.chunk_overlap, **changes}
    return IndexParams(**values)


def ingest(settings: IngestSettings, **files: str | bytes):
    """Write the files (name -> content; None deletes), then run an ingest."""
    for name, text in files.items():
        if text is None:
            (settings.corpus_dir / name).unlink()
        else:
            write(settings.corpus_dir, name.replace("__", "/"), text)
    return run_ingest(settings, EMBEDDER)


@pytest.fixture
def reader(backend):
    with closing(open_reader(backend, params(backend))) as r:
        if backend.store == "sqlite" and backend.lexical_index == "memory":
            r.open = functools.partial(open_with_memory_index, r.open)
        yield r


def test_nothing_to_read_before_the_first_ingest(backend, reader):
    with pytest.raises(IndexNotFoundError, match="make ingest"):
        reader.open()


def test_a_snapshot_holds_what_was_committed(backend, reader):
    ingest(backend, **{"a.md": "# A\n\nAlbatross facts.\n\n## B\n\nBuzzard facts.\n",
                       "guides__c.txt": "Cormorants dive for fish.\n", "bad.pdf": b"not a pdf"})
    with closing(reader.open()) as snap:
        assert (snap.generation, snap.document_count, snap.chunk_count) == (1, 2, 3)
        assert isinstance(snap.revision, str) and isinstance(snap.index_id, str)
        docs = snap.documents()
        assert [(d.path, d.kind, d.chunks) for d in docs] == [("a.md", "markdown", 2),
                                                              ("guides/c.txt", "text", 1)]
        assert all(len(d.sha256) == 64 and d.size > 0 and d.ingested_at > 0 for d in docs)
        (refused,) = snap.failures()
        assert (refused.path, refused.size) == ("bad.pdf", 9) and refused.reason
        ids = snap.chunk_ids()
        assert ids == sorted(ids) and len(ids) == 3
        chunks = snap.chunks(list(reversed(ids)) + [10**9])  # the order asked; unknown left out
        assert [c.id for c in chunks] == list(reversed(ids))
        (buzzard,) = [c for c in chunks if "Buzzard facts." in c.text]
        assert buzzard.path == "a.md" and buzzard.heading == ("A", "B") and buzzard.page is None
        assert snap.document_span("a.md", buzzard.start, buzzard.end) == buzzard.text
        assert snap.document_span("nowhere.md", 0, 5) == ""


def test_a_snapshot_keeps_its_generation_while_the_next_is_committed(backend, reader):
    ingest(backend, **{"a.md": "# A\n\nAlbatross facts.\n"})
    with closing(reader.open()) as old:
        ingest(backend, **{"a.md": "# A\n\nCormorant facts.\n", "b.md": "# B\n\nBuzzard facts.\n"})
        with closing(reader.open(previous=old)) as new:
            assert new.revision != old.revision and new.index_id == old.index_id
            assert (old.generation, new.generation) == (1, 2)
            assert [d.path for d in old.documents()] == ["a.md"]
            assert old.search_lexical("albatross", 3) and not old.search_lexical("buzzard", 3)
            assert new.search_lexical("buzzard", 3) and not new.search_lexical("albatross", 3)
            (cid, _), = old.search_lexical("albatross", 3)
            assert "Albatross" in old.chunks([cid])[0].text
            vector = EMBEDDER.embed(["Albatross facts."])[0]
            assert old.search_dense(vector, 5)[0][0] == cid  # the old vectors, too
            assert old.chunk_count == 1 and new.chunk_count == 2


def revision(reader) -> str:
    with closing(reader.open()) as snap:
        return snap.revision


def test_the_revision_moves_with_what_readers_see_and_only_then(backend, reader):
    ingest(backend, **{"a.md": "# A\n\nAlbatross facts.\n"})
    first = revision(reader)
    ingest(backend)  # nothing changed
    assert revision(reader) == first
    ingest(backend, **{"bad.pdf": b"not a pdf"})  # a new refusal: no new content...
    with closing(reader.open()) as snap:
        assert snap.generation == 1 and snap.revision != first  # ...but something to see
        assert [f.path for f in snap.failures()] == ["bad.pdf"]


def test_a_closed_snapshot_reads_nothing_and_the_next_one_reuses_it(backend, reader):
    ingest(backend, **{"a.md": "# A\n\nAlbatross facts.\n"})
    snap = reader.open()
    snap.close()
    with pytest.raises(Exception):
        snap.documents()
    with closing(reader.open(previous=snap)) as again:  # the same commit: reused, not reloaded
        assert (again.generation, again.revision, again.chunk_count) == \
            (snap.generation, snap.revision, snap.chunk_count)
        assert [d.path for d in again.documents()] == ["a.md"]


def test_an_index_built_anew_gets_a_new_id_and_a_rebuild_keeps_it(backend, reader):
    ingest(backend, **{"a.md": "# A\n\nAlbatross facts.\n"})
    first = reader.open()
    first.close()
    run_ingest(backend, EMBEDDER, rebuild=True)
    with closing(reader.open()) as rebuilt:
        assert rebuilt.index_id == first.index_id and rebuilt.generation == 2
    wipe(backend)  # everything gone: the next ingest builds from nothing
    ingest(backend)
    with closing(reader.open()) as fresh:
        assert fresh.index_id != first.index_id and fresh.generation == 1


def test_an_index_built_otherwise_is_refused_with_the_fix(backend):
    ingest(backend, **{"a.md": "# A\n\nAlbatross facts.\n"})
    with closing(open_reader(backend, params(backend, chunk_tokens=99))) as other:
        with pytest.raises(IndexMismatchError, match="--rebuild"):
            other.open()


def test_dense_search_ranks_by_cosine_and_honours_filters(backend, reader):
    ingest(backend, **{"a.md": "# A\n\nAlbatross wings span three metres.\n",
                       "guides__b.md": "# B\n\nBuzzards circle over hills.\n",
                       "c.txt": "Cormorants dive deep for fish.\n"})
    with closing(reader.open()) as snap:
        vector = EMBEDDER.embed(["Buzzards circle over hills."])[0]
        hits = snap.search_dense(vector, 10)
        assert len(hits) == 3 and [s for _, s in hits] == sorted((s for _, s in hits),
                                                                 reverse=True)
        best, similarity = hits[0]
        assert snap.chunks([best])[0].path == "guides/b.md" and similarity > 0.8
        assert snap.similarities(vector, [hits[2][0], best]) == pytest.approx(
            [hits[2][1], similarity], abs=1e-3)
        assert len(snap.search_dense(vector, 2)) == 2
        only_text = snap.search_dense(vector, 10, ChunkFilter(kinds=("text",)))
        assert [snap.chunks([i])[0].path for i, _ in only_text] == ["c.txt"]
        in_guides = snap.search_dense(vector, 10, ChunkFilter(path_glob="guides/*"))
        assert [snap.chunks([i])[0].path for i, _ in in_guides] == ["guides/b.md"]
        assert snap.search_dense(vector, 10, ChunkFilter(path_glob="nowhere/*")) == []
        assert snap.chunk_ids(ChunkFilter(kinds=("markdown",))) == sorted(
            i for i, _ in hits if snap.chunks([i])[0].path.endswith(".md"))


def test_lexical_search_is_bm25_over_any_word_and_never_a_query_language(backend, reader):
    ingest(backend, **{"a.md": "# A\n\nAlbatross wings. Albatross flights. Albatross eggs.\n",
                       "b.md": "# B\n\nBuzzards and one albatross.\n",
                       "c.md": "# C\n\nNEAR AND OR NOT \"quoted\" words*\n",
                       "d.md": "# D\n\nCafé Trésor serves crêpes.\n"})
    with closing(reader.open()) as snap:
        hits = snap.search_lexical("albatross", 10)
        assert [snap.chunks([i])[0].path for i, _ in hits] == ["a.md", "b.md"]  # tf ranks
        assert hits[0][1] > hits[1][1] > 0
        either = {snap.chunks([i])[0].path for i, _ in snap.search_lexical("buzzards eggs", 10)}
        assert either == {"a.md", "b.md"}  # OR
        assert snap.search_lexical('NOT "quoted" OR (words*', 5)
        assert snap.search_lexical("!!! ??", 5) == []
        assert snap.search_lexical("albatross", 10, ChunkFilter(path_glob="b.md")) == hits[1:]
        assert snap.search_lexical("cafe tresor crepes", 5)  # diacritics folded
        assert snap.doc_freq("albatross") == 2 and snap.doc_freq("cafe") == 1
        assert snap.doc_freq("zebra") == 0


def test_chunk_ids_are_never_reused(backend, reader):
    ingest(backend, **{"a.md": "# A\n\nAlbatross facts.\n"})
    with closing(reader.open()) as snap:
        first = snap.chunk_ids()
    ingest(backend, **{"a.md": None})
    ingest(backend, **{"b.md": "# B\n\nBuzzard facts.\n"})
    with closing(reader.open()) as snap:
        assert not set(first) & set(snap.chunk_ids())  # an old citation id cannot point at b.md


def test_similarities_of_no_ids_is_empty(backend, reader):
    ingest(backend, **{"a.md": "# A\n\nAlbatross facts.\n"})
    with closing(reader.open()) as snap:
        assert snap.similarities(np.ones(EMBEDDER.dim, dtype=np.float32), []) == []
        assert snap.chunks([]) == []
