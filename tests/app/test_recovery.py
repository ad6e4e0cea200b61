"""The index on a bad day, in-process: a damaged or deleted database, a folder that cannot be
written, a log that must not grow; each answered (503 with the reason) and recovered without a
person. tests/e2e/test_faults.py does the same to the real service over HTTP."""
from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import app.freshness as freshness
from app.errors import IndexNotReady
from app.freshness import IngestFailed, IngestRunner
from app.index_holder import IndexHolder
from app.settings import Settings
from ingest.embedders import HashingEmbedder
from ingest.errors import IndexDamagedError
from ingest.store import IndexParams, open_reader
from ingest.store.sqlite import dense
from ingest.store.sqlite.store import move_aside
from ingest.sync import run_ingest
from tests.helpers import write

EMBEDDER = HashingEmbedder()


@pytest.fixture
def indexed(tmp_path) -> Settings:
    settings = Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index",
                        embedder="hashing", watch=False)
    for i in range(6):
        write(settings.corpus_dir, f"d{i}.md", f"# D{i}\n\nDocument {i} is about herons.\n")
    run_ingest(settings, EMBEDDER)
    return settings


def holder_and_runner(settings: Settings) -> tuple[IndexHolder, IngestRunner]:
    holder = IndexHolder(open_reader(settings, IndexParams(
        EMBEDDER.model_id, settings.chunk_tokens, settings.chunk_overlap)))
    return holder, IngestRunner(settings, EMBEDDER, holder)


def until(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)
    return value


def ready(holder: IndexHolder):
    try:
        return holder.current()
    except IndexNotReady:
        return None


def test_a_damaged_database_is_a_503_then_rebuilt_and_moved_aside(indexed):
    db = indexed.index_dir / "index.db"
    holder, runner = holder_and_runner(indexed)
    before = holder.current()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])  # truncated, as a crash of the disk would leave it
    (indexed.index_dir / "index.db-wal").unlink(missing_ok=True)
    fresh_holder, fresh_runner = holder_and_runner(indexed)  # as a service starting on it
    with pytest.raises(IndexNotReady, match="damaged"):
        fresh_holder.current()
    snap = until(lambda: ready(fresh_holder))  # the runner rebuilt it on its own
    assert snap.document_count == 6 and snap.index_id != before.index_id
    (aside,) = [p for p in indexed.index_dir.glob("index.db.damaged-*")
                if not p.name.endswith(("-wal", "-shm"))]
    assert aside.read_bytes() == data[: len(data) // 2]  # kept, not deleted
    # the commit is visible a moment before the runner records its run
    assert until(lambda: fresh_runner.status()["last"])["ok"] is True
    for h in (holder, fresh_holder):
        h.close()


def damage_pages(db, table_prefix: str) -> None:
    """Overwrite the pages of some tables in place (the file keeps its inode and its first
    pages), then change the header so the readers' page caches are not trusted."""
    conn = sqlite3.connect(db)
    pages = [n for (n,) in conn.execute("SELECT pageno FROM dbstat WHERE name LIKE ?",
                                        (table_prefix + "%",))]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:
        for n in pages:
            f.seek((n - 1) * size)
            f.write(b"\xff" * size)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version=7")
    conn.close()


def found(snap) -> list:
    """The chunks BM25 finds for "herons" (reads the lexical index, then the chunks)."""
    return snap.chunks([i for i, _ in snap.search_lexical("herons", 3)])


# FTS5 reads its own pages on every search; the in-memory index (built before the damage)
# reads none, and the damage is found by the chunks' read
@pytest.mark.parametrize("lexical,table", [("fts5", "chunks_fts"), ("memory", "chunks")])
def test_damage_found_while_serving_is_a_503_and_is_rebuilt(indexed, lexical, table):
    indexed = indexed.model_copy(update={"lexical_index": lexical})
    holder, runner = holder_and_runner(indexed)
    if lexical == "memory":
        until(lambda: holder.current().lexical is not None)  # built in the background
    before = holder.current()
    lost = []
    holder.on_lost = lambda why: (lost.append(why), runner.recover(why))
    with holder.lease() as snap:
        assert found(snap) and (snap.lexical is None) == (lexical == "fts5")
    damage_pages(indexed.index_dir / "index.db", table)
    with pytest.raises(IndexNotReady, match="damaged"):  # found by the read, not at the open
        with holder.lease() as snap:
            found(snap)
    snap = until(lambda: ready(holder))
    assert lost == ["damaged"] and snap.index_id != before.index_id
    with holder.lease() as snap:
        assert snap.search_lexical("herons", 3)
    assert list(indexed.index_dir.glob("index.db.damaged-*"))
    holder.close()


def test_damaged_files_are_moved_aside_under_names_of_their_own(tmp_path):
    names = set()
    for i in range(3):  # within one second: one stamp
        for suffix in ("", "-wal"):
            (tmp_path / f"index.db{suffix}").write_text(f"copy {i}{suffix}")
        names.add(move_aside(tmp_path).name)
    assert len(names) == 3
    kept = sorted(p.read_text() for p in tmp_path.glob("index.db.damaged-*"))
    assert kept == sorted(f"copy {i}{s}" for i in range(3) for s in ("", "-wal"))


def test_a_faiss_file_that_cannot_be_written_leaves_the_commit_serving(indexed, monkeypatch):
    def full(*_):
        raise RuntimeError("Error in faiss::FileIOWriter: write error: No space left on device")

    monkeypatch.setattr(dense.faiss, "write_index", full)
    holder, runner = holder_and_runner(indexed)
    write(indexed.corpus_dir, "new.md", "# New\n\nThe new note is about storks.\n")
    report = runner.run("api")  # the commit stands: the FAISS file is derived data
    with holder.lease() as snap:  # built in memory, as often as the file cannot be saved
        assert snap.generation == report.generation and snap.document_count == 7
        assert snap.search_dense(EMBEDDER.embed(["storks"])[0], 1)
    holder.close()


def test_an_incremental_ingest_of_a_damaged_database_says_how_to_rebuild(indexed):
    db = indexed.index_dir / "index.db"
    db.write_bytes(db.read_bytes()[:4096])
    (indexed.index_dir / "index.db-wal").unlink(missing_ok=True)
    with pytest.raises(IndexDamagedError, match="--rebuild"):
        run_ingest(indexed, EMBEDDER)
    report = run_ingest(indexed, EMBEDDER, rebuild=True)
    assert report.moved_aside.startswith("index.db.damaged-") and len(report.added) == 6


def test_a_deleted_database_is_rebuilt_under_a_new_index_id(indexed):
    holder, runner = holder_and_runner(indexed)
    first = holder.current()
    for part in indexed.index_dir.glob("index.db*"):
        part.unlink()
    with pytest.raises(IndexNotReady):
        holder.current()
    snap = until(lambda: ready(holder))
    assert snap.document_count == 6 and snap.generation == 1
    assert snap.index_id != first.index_id  # a new index, said so: not generation 1 again
    holder.close()


def test_a_failed_watcher_ingest_is_retried_until_it_succeeds(indexed, monkeypatch):
    monkeypatch.setattr(freshness, "RETRY_FIRST_S", 0.1)
    holder, runner = holder_and_runner(indexed)
    corpus = indexed.corpus_dir
    away = corpus.with_name("corpus-away")
    corpus.rename(away)  # the corpus is gone for a while (an unmounted share)
    runner._run_quietly("watch")
    assert runner.status()["last"]["ok"] is False and runner.status()["retrying"]
    write(away, "late.md", "# Late\n\nA file written during the outage, about egrets.\n")
    away.rename(corpus)  # back, with no new file event
    until(lambda: runner.status()["last"]["ok"])
    with holder.lease() as snap:
        assert "late.md" in {d.path for d in snap.documents()}
    assert not runner.status()["retrying"]
    runner.stop()
    holder.close()


def test_rebuild_requests_that_wait_share_one_rebuild(indexed):
    holder, runner = holder_and_runner(indexed)
    started = threading.Event()
    real = freshness.run_ingest

    def slow(*args, **kwargs):
        started.set()
        time.sleep(0.5)
        return real(*args, **kwargs)

    freshness.run_ingest = slow
    try:
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(runner.run, "api", rebuild=True)
            started.wait(10)
            later = [pool.submit(runner.run, "api", rebuild=True) for _ in range(3)]
            reports = [f.result(timeout=60) for f in [first, *later]]
    finally:
        freshness.run_ingest = real
    assert runner.status()["runs"] == 2  # the one running, and one for the three that waited
    assert reports[1] is reports[2] is reports[3] and reports[0] is not reports[1]
    holder.close()


def test_the_write_ahead_log_stays_small_while_readers_come_and_go(indexed):
    holder, runner = holder_and_runner(indexed)
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            with holder.lease() as snap:
                snap.search_lexical("herons", 5)

    with ThreadPoolExecutor(3) as pool:
        readers = [pool.submit(reader) for _ in range(3)]
        for i in range(30):
            write(indexed.corpus_dir, f"n{i}.md", f"# N{i}\n\nNote {i} about storks. " * 40)
            runner.run("api")
        stop.set()
        for r in readers:
            r.result()
    sizes = holder.storage()
    # Without readers that end their transactions, this log reached ten times the database.
    assert sizes["wal"] <= max(sizes["database"], 1 << 20), sizes
    holder.close()


def test_a_folder_that_cannot_be_written_fails_the_ingest_not_the_index(indexed, tmp_path):
    holder, runner = holder_and_runner(indexed)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    broken = indexed.model_copy(update={"index_dir": blocker / "index"})
    with pytest.raises(IngestFailed) as failed:
        IngestRunner(broken, EMBEDDER, holder).run("api")
    assert failed.value.status == 503 and str(tmp_path) not in str(failed.value)
    with holder.lease() as snap:  # the index that was there still answers
        assert snap.search_lexical("herons", 5)
    holder.close()
