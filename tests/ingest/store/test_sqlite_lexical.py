"""The SQLite store's in-memory BM25 index (ingest/store/sqlite/lexical.py): it ranks as FTS5
does, a commit's index built from the previous one equals one built from nothing, and the
reader builds it in the background while FTS5 answers."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from contextlib import closing

import numpy as np
import pytest

from app.retrieval import STOP_WORDS, WORD
from ingest.store import ChunkFilter, open_reader
from ingest.store.bm25 import terms
from ingest.store.sqlite.lexical import LexicalIndex, build
from ingest.store.sqlite.snapshot import SqliteSnapshot
from ingest.store.sqlite.store import DB_NAME, connect
from ingest.sync import run_ingest
from tests.helpers import ROOT, open_with_memory_index, write

QUESTIONS = [json.loads(line)["q"] for line in
             (ROOT / "tests" / "data" / "abstention_questions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def starter(tmp_path_factory):
    """The starter corpus ingested with the hashing embedder (BM25 does not depend on it)."""
    from ingest.embedders import HashingEmbedder
    from ingest.settings import IngestSettings

    base = tmp_path_factory.mktemp("lexical")
    shutil.copytree(ROOT / "corpus", base / "corpus")
    settings = IngestSettings(corpus_dir=base / "corpus", index_dir=base / "index",
                              embedder="hashing", lexical_index="fts5")
    run_ingest(settings, HashingEmbedder())
    return settings


def index_of(index_dir, previous: LexicalIndex | None = None) -> LexicalIndex:
    with closing(connect(index_dir / DB_NAME)) as conn:
        conn.execute("BEGIN")
        return build(conn, previous)


def content_words(question: str) -> str:
    return " ".join(w for w in WORD.findall(question) if w.lower() not in STOP_WORDS)


def ranked(hits: list[tuple[int, float]]) -> list[tuple[float, int]]:
    """Best first, ties by id (the order among equal scores is each implementation's own)."""
    return sorted((-round(s, 6), i) for i, s in hits)


def assert_same_ranking(memory: list[tuple[int, float]], fts5: list[tuple[int, float]]) -> None:
    """The same chunks with the same scores (to float rounding), each list best first: the
    same ranking but for the order among equal scores."""
    for hits in (memory, fts5):
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert sorted(i for i, _ in memory) == sorted(i for i, _ in fts5)
    score = dict(fts5)
    assert [s for _, s in memory] == pytest.approx([score[i] for i, _ in memory], rel=1e-6)


def test_it_ranks_every_question_as_fts5_does(starter):
    index = index_of(starter.index_dir)
    filters = [None, ChunkFilter(kinds=("pdf",)), ChunkFilter(path_glob="guides/*")]
    compared = 0
    with closing(SqliteSnapshot.open(starter.index_dir)) as snap:
        assert index.commit == snap.commit and len(index.ids) == snap.chunk_count
        for question in QUESTIONS + ["refund", "Kestrelbook", "zyzzyva nonexistent"]:
            query = content_words(question) or question
            for where in filters:
                for max_rows in (10_000, 40):  # 40: the "common terms" cut at work
                    snap.lexical = None
                    fts5 = snap.search_lexical(query, 1000, where, max_rows)
                    snap.lexical = index
                    memory = snap.search_lexical(query, 1000, where, max_rows)
                    assert_same_ranking(memory, fts5)
                    compared += bool(fts5)
            for word in WORD.findall(question):
                if len(terms(word)) != 1:  # "Kestrelbook's": FTS5 counts the phrase, the
                    continue  # other stores (as Postgres) the rarest of its terms
                snap.lexical = None
                fts5_df = snap.doc_freq(word)
                snap.lexical = index
                assert snap.doc_freq(word) == fts5_df, word
    assert compared > 60  # most questions match something: the comparison has content


def test_the_top_k_is_the_best_k(starter):
    index = index_of(starter.index_dir)
    every = index.search("refund annual plan", 1000)
    assert len(every) > 10
    assert index.search("refund annual plan", 10) == every[:10]
    assert [s for _, s in every] == sorted((s for _, s in every), reverse=True)


def postings(index: LexicalIndex, term: str) -> list[tuple[int, int]]:
    """(chunk id, frequency) of each chunk holding the term."""
    t = index.vocab.get(term)
    if t is None:
        return []
    at = slice(index.offsets[t], index.offsets[t + 1])
    return [(int(index.ids[r]), int(f)) for r, f in zip(index.rows[at], index.tfs[at])]


def test_a_commit_built_on_the_previous_equals_one_built_from_nothing(settings, hashing_embedder):
    corpus = settings.corpus_dir
    for n in range(6):
        write(corpus, f"doc{n}.md", f"# Doc {n}\n\nAlbatross {n} facts and buzzard {n} notes.\n")
    run_ingest(settings, hashing_embedder)
    first = index_of(settings.index_dir)
    (corpus / "doc1.md").unlink()
    write(corpus, "doc2.md", "# Doc 2\n\nCormorants dive deep. Cormorants again.\n")
    write(corpus, "new.md", "# New\n\nA heron, a cormorant and an albatross.\n")
    run_ingest(settings, hashing_embedder)
    from_previous = index_of(settings.index_dir, first)
    from_nothing = index_of(settings.index_dir)
    assert from_previous.commit == from_nothing.commit != first.commit
    for field in ("ids", "lengths", "norm"):
        assert np.array_equal(getattr(from_previous, field), getattr(from_nothing, field)), field
    for term in from_previous.vocab.keys() | from_nothing.vocab.keys():
        assert postings(from_previous, term) == postings(from_nothing, term), term
    assert from_previous.search("cormorant", 10) == from_nothing.search("cormorant", 10)
    assert from_previous.df("buzzard") == 4 and from_previous.df("cormor") == 2


def test_an_index_of_another_store_is_not_built_upon(settings, hashing_embedder, tmp_path):
    write(settings.corpus_dir, "a.md", "# A\n\nAlbatross facts.\n")
    run_ingest(settings, hashing_embedder)
    other = index_of(settings.index_dir)
    shutil.rmtree(settings.index_dir)  # a new index: a new id, and chunk ids from 1 again
    write(settings.corpus_dir, "b.md", "# B\n\nBuzzard facts.\n")
    run_ingest(settings, hashing_embedder)
    rebuilt = index_of(settings.index_dir, other)
    assert rebuilt.index_id != other.index_id
    assert np.array_equal(rebuilt.rows, index_of(settings.index_dir).rows)
    assert rebuilt.df("albatross") == 1 and rebuilt.df("buzzard") == 1


def test_a_build_told_to_stop_gives_nothing(settings, hashing_embedder):
    write(settings.corpus_dir, "a.md", "# A\n\nAlbatross facts.\n")
    run_ingest(settings, hashing_embedder)
    with closing(connect(settings.index_dir / DB_NAME)) as conn:
        conn.execute("BEGIN")
        assert build(conn, None, stop=lambda: True) is None


def test_the_reader_serves_fts5_until_the_index_of_the_commit_is_built(settings,
                                                                      hashing_embedder):
    settings = settings.model_copy(update={"lexical_index": "memory"})
    write(settings.corpus_dir, "a.md", "# A\n\nAlbatross facts.\n")
    run_ingest(settings, hashing_embedder)
    with closing(open_reader(settings)) as reader:
        first = open_with_memory_index(reader.open)
        assert first.lexical.commit == first.commit
        memory = first.search_lexical("albatross", 5)
        first.lexical = None
        assert memory and ranked(memory) == ranked(first.search_lexical("albatross", 5))
        first.close()
        write(settings.corpus_dir, "b.md", "# B\n\nBuzzard facts.\n")
        run_ingest(settings, hashing_embedder)
        with closing(reader.open()) as during:
            # FTS5 or, if the build already finished, the new commit's index: never the old one
            assert during.lexical is None or during.lexical.commit == during.commit
            assert during.search_lexical("buzzard", 5)
        second = open_with_memory_index(reader.open)
        assert second.lexical.commit == second.commit != first.commit
        assert len(second.search_lexical("buzzard albatross", 5)) == 2
        second.close()


def test_the_reader_setting_fts5_builds_nothing(settings, hashing_embedder):
    write(settings.corpus_dir, "a.md", "# A\n\nAlbatross facts.\n")
    run_ingest(settings, hashing_embedder)
    fts5 = settings.model_copy(update={"lexical_index": "fts5"})
    with closing(open_reader(fts5)) as reader:
        for _ in range(3):
            with closing(reader.open()) as snap:
                assert snap.lexical is None and snap.search_lexical("albatross", 5)


def test_a_database_gone_under_the_reader_is_reported_as_before(
        settings, hashing_embedder):
    from ingest.errors import IndexNotFoundError

    settings = settings.model_copy(update={"lexical_index": "memory"})
    write(settings.corpus_dir, "a.md", "# A\n\nAlbatross facts.\n")
    run_ingest(settings, hashing_embedder)
    with closing(open_reader(settings)) as reader:
        open_with_memory_index(reader.open).close()
        shutil.rmtree(settings.index_dir)
        with pytest.raises(IndexNotFoundError):
            reader.open()
        run_ingest(settings, hashing_embedder)  # built anew: a new index, served again
        with closing(open_with_memory_index(reader.open)) as snap:
            assert snap.search_lexical("albatross", 5) and snap.lexical.index_id == snap.index_id


def test_terms_no_chunk_holds_leave_the_vocabulary(settings, hashing_embedder):
    for n in range(8):
        write(settings.corpus_dir, f"doc{n}.md", f"# Doc {n}\n\nword{n}a word{n}b word{n}c.\n")
    run_ingest(settings, hashing_embedder)
    before = index_of(settings.index_dir)
    for n in range(1, 8):
        (settings.corpus_dir / f"doc{n}.md").unlink()
    run_ingest(settings, hashing_embedder)
    after = index_of(settings.index_dir, before)
    assert len(after.vocab) < len(before.vocab) / 2
    assert set(after.vocab) == set(index_of(settings.index_dir).vocab)
    assert all(after.df(t) for t in after.vocab) and after.df("word3a") == 0
    assert [i for i, _ in after.search("word0b word5b", 5)] == list(after.ids)


def test_a_copy_with_the_same_index_id_is_built_from_nothing(settings, hashing_embedder,
                                                            tmp_path):
    """A copy of an index keeps its id but numbers its chunks from 1 again: postings of the
    file that was there before must not be kept for chunk ids that now hold other text."""
    import os

    from ingest.store.sqlite.lexical import LexicalBuilder

    write(settings.corpus_dir, "a.md", "# A\n\nAlbatross facts.\n")
    run_ingest(settings, hashing_embedder)
    other = settings.model_copy(update={"corpus_dir": tmp_path / "other",
                                        "index_dir": tmp_path / "other-index"})
    write(other.corpus_dir, "b.md", "# B\n\nBuzzard facts.\n")
    run_ingest(other, hashing_embedder)
    db, other_db = settings.index_dir / DB_NAME, other.index_dir / DB_NAME
    with closing(sqlite3.connect(db)) as conn:
        index_id = conn.execute("SELECT value FROM meta WHERE key = 'index_id'").fetchone()[0]
    with closing(sqlite3.connect(other_db)) as conn, conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'index_id'", (index_id,))
    builder = LexicalBuilder(db)
    try:
        first = wait_for(builder, commit_of(db))
        assert first.search("albatross", 5)
        for suffix in ("-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        os.replace(other_db, db)
        copied = wait_for(builder, commit_of(db))
        assert copied.index_id == first.index_id and list(copied.ids) == list(first.ids)
        assert copied.search("buzzard", 5) and not copied.search("albatross", 5)
    finally:
        builder.close()


def commit_of(db) -> str:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT value FROM meta WHERE key = 'commit'").fetchone()[0]


def wait_for(builder, commit: str, wait_s: float = 60.0) -> LexicalIndex:
    import time

    deadline = time.monotonic() + wait_s
    while (index := builder.get(commit)) is None:
        assert time.monotonic() < deadline, "never built"
        time.sleep(0.005)
    return index
