"""The SQLite backend's own reader behaviour: the derived FAISS file is rebuilt when it is missing
or damaged, and a read-only reader leaves the folder alone. What every backend does is in
test_reader_contract.py."""
from __future__ import annotations

from ingest.store.sqlite.dense import dense_path
from ingest.store.sqlite.snapshot import SqliteSnapshot
from ingest.sync import run_ingest
from tests.helpers import write


def test_dense_file_rebuilt_when_missing_or_damaged(settings, hashing_embedder):
    write(settings.corpus_dir, "a.md", "# A\n\nAlbatross facts.\n\n## B\n\nBuzzard facts.\n")
    run_ingest(settings, hashing_embedder)
    with SqliteSnapshot.open(settings.index_dir) as snap:
        path = dense_path(settings.index_dir, snap.meta["commit"])
    assert path.exists()
    path.write_bytes(b"garbage")
    with SqliteSnapshot.open(settings.index_dir) as snap:
        assert snap.dense.ntotal == 2
    path.unlink()
    with SqliteSnapshot.open(settings.index_dir, save_dense=False) as snap:
        assert snap.dense.ntotal == 2
    assert not path.exists()  # a read-only reader leaves the folder alone
    with SqliteSnapshot.open(settings.index_dir) as snap:
        vec = hashing_embedder.embed(["Buzzard facts."])[0]
        assert snap.chunks([snap.search_dense(vec, 1)[0][0]])[0].heading == ("A", "B")
    assert path.exists()  # and saved again for the next reader
