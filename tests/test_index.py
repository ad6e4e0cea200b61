"""Readers: a snapshot keeps seeing its generation while ingest commits the next one, and the
derived FAISS file is rebuilt when it is missing or damaged."""
from __future__ import annotations

import pytest

from ingest.dense import dense_path
from ingest.errors import IndexNotFoundError
from ingest.index import IndexSnapshot
from ingest.sync import run_ingest
from tests.test_sync import write


def test_snapshot_is_isolated_from_later_commits(settings, hashing_embedder):
    write(settings.corpus_dir, "a.md", "# A\n\nAlbatross facts.\n")
    run_ingest(settings, hashing_embedder)
    old = IndexSnapshot.open(settings.index_dir)
    write(settings.corpus_dir, "a.md", "# A\n\nCormorant facts.\n")
    write(settings.corpus_dir, "b.md", "# B\n\nBuzzard facts.\n")
    assert run_ingest(settings, hashing_embedder).generation == 2
    new = IndexSnapshot.open(settings.index_dir)
    try:
        assert (old.generation, new.generation) == (1, 2)
        assert [d.path for d in old.documents()] == ["a.md"]
        assert old.search_lexical("albatross", 3) and not old.search_lexical("buzzard", 3)
        assert new.search_lexical("buzzard", 3) and not new.search_lexical("albatross", 3)
        (cid, _), = old.search_lexical("albatross", 3)
        assert "Albatross" in old.chunks([cid])[0].text
        assert old.dense.ntotal == 1 and new.dense.ntotal == 2
    finally:
        old.close()
        new.close()


def test_dense_file_rebuilt_when_missing_or_damaged(settings, hashing_embedder):
    write(settings.corpus_dir, "a.md", "# A\n\nAlbatross facts.\n\n## B\n\nBuzzard facts.\n")
    run_ingest(settings, hashing_embedder)
    with IndexSnapshot.open(settings.index_dir) as snap:
        path = dense_path(settings.index_dir, snap.meta["commit"])
    assert path.exists()
    path.write_bytes(b"garbage")
    with IndexSnapshot.open(settings.index_dir) as snap:
        assert snap.dense.ntotal == 2
    path.unlink()
    with IndexSnapshot.open(settings.index_dir, save_dense=False) as snap:
        assert snap.dense.ntotal == 2
    assert not path.exists()  # a read-only reader leaves the folder alone
    with IndexSnapshot.open(settings.index_dir) as snap:
        vec = hashing_embedder.embed(["Buzzard facts."])[0]
        assert snap.chunks([snap.search_dense(vec, 1)[0][0]])[0].heading == ("A", "B")
    assert path.exists()  # and saved again for the next reader


def test_lexical_query_syntax_is_not_interpreted(settings, hashing_embedder):
    write(settings.corpus_dir, "a.md", "# A\n\nNEAR AND OR NOT \"quoted\" words*\n")
    run_ingest(settings, hashing_embedder)
    with IndexSnapshot.open(settings.index_dir) as snap:
        assert snap.search_lexical('NOT "quoted" OR (words*', 5)
        assert snap.search_lexical("!!! ??", 5) == []


def test_no_index_yet(tmp_path):
    with pytest.raises(IndexNotFoundError, match="make ingest"):
        IndexSnapshot.open(tmp_path / "index")


def test_chunk_ids_are_never_reused(settings, hashing_embedder):
    write(settings.corpus_dir, "a.md", "# A\n\nAlbatross facts.\n")
    run_ingest(settings, hashing_embedder)
    with IndexSnapshot.open(settings.index_dir) as snap:
        first = snap.chunk_ids()
    (settings.corpus_dir / "a.md").unlink()
    run_ingest(settings, hashing_embedder)
    write(settings.corpus_dir, "b.md", "# B\n\nBuzzard facts.\n")
    run_ingest(settings, hashing_embedder)
    with IndexSnapshot.open(settings.index_dir) as snap:
        assert not set(first) & set(snap.chunk_ids())  # an old citation id cannot point at b.md
