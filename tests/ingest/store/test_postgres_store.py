"""What only the PostgreSQL store does, against a real server: the advisory lock between
ingests of one index, the HNSW index the dense search goes through, BM25 scored as SQLite's
FTS5 scores it, vectors of another size refused, and nothing written to RAG_INDEX_DIR."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from contextlib import closing

import psycopg
import pytest

from ingest.embedders import HashingEmbedder
from ingest.errors import IndexMismatchError
from ingest.settings import IngestSettings
from ingest.store import open_reader
from ingest.store.postgres.lock import take_ingest_lock
from ingest.store.postgres.reader import EF_SEARCH
from ingest.sync import run_ingest
from tests.helpers import PYTHON, ROOT, STARTER_CORPUS, store_state, subprocess_env, write
from tests.postgres import drop_schema, new_schema, pg_env


@pytest.fixture
def pg(pg_url, tmp_path):
    (tmp_path / "corpus").mkdir()
    settings = IngestSettings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index",
                              embedder="hashing", store="postgres", database_url=pg_url,
                              database_schema=new_schema())
    yield settings
    drop_schema(pg_url, settings.database_schema)


def waiting_for_lock(conn: psycopg.Connection, proc: subprocess.Popen) -> None:
    """Until another session waits for an advisory lock (the child blocked on ours)."""
    deadline = time.monotonic() + 120  # the child's start-up on a busy machine
    while not conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                           "NOT granted").fetchone()[0]:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the second ingest never waited for the lock"
        time.sleep(0.05)
    assert proc.poll() is None  # still waiting


def test_a_second_ingest_waits_for_the_advisory_lock(pg):
    write(pg.corpus_dir, "a.md", "# A\n\nAardvarks.\n")
    env = pg_env(pg.database_url, pg.database_schema)
    with psycopg.connect(pg.database_url, autocommit=True) as holder:
        take_ingest_lock(holder, pg.database_schema, "the test")
        proc = subprocess.Popen([PYTHON, "-m", "ingest", "--corpus", str(pg.corpus_dir), "--json"],
                                cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                env=subprocess_env(RAG_EMBEDDER="hashing", **env))
        waiting_for_lock(holder, proc)
    out, err = proc.communicate(timeout=120)  # the holder's connection closed: it goes on
    assert proc.returncode == 0 and "waiting for another ingest" in err
    assert "schema" in err and "s3cret" not in err
    assert json.loads(out)["files"]["added"] == ["a.md"]


def test_dense_search_goes_through_the_hnsw_index(pg):
    write(pg.corpus_dir, "a.md", "# A\n\n" + "\n\n".join(f"Paragraph {i} on otters." * 20
                                                           for i in range(30)))
    run_ingest(pg, HashingEmbedder())
    vector = HashingEmbedder().embed(["otters"])[0]
    with closing(open_reader(pg)) as reader, closing(reader.open()) as snap:
        conn = snap._conn
        conn.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the plan show
        plan = "\n".join(r[0] for r in conn.execute(
            f'EXPLAIN SELECT id FROM "{pg.database_schema}".chunks ORDER BY '
            f"(embedding::halfvec({snap.dim})) <=> %s::halfvec({snap.dim}) LIMIT 5",
            (vector,)).fetchall())
        assert "chunks_hnsw" in plan, plan
        assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == str(EF_SEARCH)
        assert len(snap.search_dense(vector, 5)) == 5


QUERIES = ["refund policy days", "What does the Business plan cost?", "password reset email",
           "annual monthly subscription cancel", "café crêpes", "the of and", "zebra"]


def test_bm25_ranks_and_scores_as_sqlite_fts5_does(pg, tmp_path):
    """The starter corpus on both stores: the same chunks, in the same order, with the same
    scores (both are FTS5's BM25: k1 1.2, b 0.75, its idf; the same tokens and stems)."""
    shutil.rmtree(pg.corpus_dir)
    shutil.copytree(STARTER_CORPUS, pg.corpus_dir)
    sqlite = pg.model_copy(update={"store": "sqlite"})
    for settings in (pg, sqlite):
        run_ingest(settings, HashingEmbedder())
    ranked = {}
    for settings in (pg, sqlite):
        with closing(open_reader(settings)) as reader, closing(reader.open()) as snap:
            ranked[settings.store] = [
                [((c.path, c.ordinal), s) for c, (_, s) in
                 zip(snap.chunks([i for i, _ in snap.search_lexical(q, 10)]),
                     snap.search_lexical(q, 10))] for q in QUERIES]
            assert snap.doc_freq("refund") > 0
    for q, on_pg, on_sqlite in zip(QUERIES, ranked["postgres"], ranked["sqlite"]):
        assert [k for k, _ in on_pg] == [k for k, _ in on_sqlite], q
        assert [s for _, s in on_pg] == pytest.approx([s for _, s in on_sqlite], rel=1e-4), q
    assert any(ranked["postgres"]) and ranked["postgres"][-1] == []  # "zebra": in no chunk


def test_vectors_of_another_size_are_refused_with_the_rebuild_message(pg):
    write(pg.corpus_dir, "a.md", "# A\n\nAardvarks dig.\n")
    run_ingest(pg, HashingEmbedder())
    before = store_state(pg)
    write(pg.corpus_dir, "b.md", "# B\n\nBadgers dig too.\n")
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        run_ingest(pg, HashingEmbedder(dim=256))  # the same model id, another size
    assert store_state(pg) == before
    assert not pg.index_dir.exists()  # nothing of a PostgreSQL index in RAG_INDEX_DIR


def test_vectors_no_chunk_refers_to_are_dropped_at_the_commit(pg):
    def orphans() -> int:
        with psycopg.connect(pg.database_url) as conn:
            return conn.execute(
                f'SELECT count(*) FROM "{pg.database_schema}".vectors v WHERE NOT EXISTS '
                f'(SELECT 1 FROM "{pg.database_schema}".chunks c WHERE c.vec_key = v.key)'
            ).fetchone()[0]

    write(pg.corpus_dir, "a.md", "# A\n\nAardvarks dig.\n")
    write(pg.corpus_dir, "b.md", "# B\n\nBadgers dig too.\n")
    run_ingest(pg, HashingEmbedder())
    write(pg.corpus_dir, "a.md", "# A\n\nAardvarks dig deeper now.\n")  # changed
    (pg.corpus_dir / "b.md").unlink()  # deleted
    report = run_ingest(pg, HashingEmbedder())
    assert report.changed == ["a.md"] and report.deleted == ["b.md"]
    assert orphans() == 0
    run_ingest(pg, HashingEmbedder(), rebuild=True)
    assert orphans() == 0 and store_state(pg)["dense"] == 1
