"""The service's side of freshness, in-process: snapshot leases across commits, and the
ingest runner that serialises the watcher's, the endpoint's and other processes' ingests."""
from __future__ import annotations

import fcntl
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.errors import IndexNotReady
from app.freshness import IngestFailed, IngestRunner
from app.index_holder import IndexHolder
from app.settings import Settings
from ingest.embedders import HashingEmbedder
from ingest.store import IndexParams, open_reader
from ingest.sync import run_ingest
from tests.helpers import write


@pytest.fixture
def app_settings(tmp_path) -> Settings:
    (tmp_path / "corpus").mkdir()
    return Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index",
                    embedder="hashing", watch=False)


def holder_for(settings: Settings) -> IndexHolder:
    return IndexHolder(open_reader(settings, IndexParams(
        HashingEmbedder.model_id, settings.chunk_tokens, settings.chunk_overlap)))


def test_a_lease_keeps_its_generation_and_its_snapshot_closes_with_it(app_settings):
    emb = HashingEmbedder()
    write(app_settings.corpus_dir, "a.md", "# A\n\nAlpacas graze.\n")
    run_ingest(app_settings, emb)
    holder = holder_for(app_settings)
    with holder.lease() as old:
        write(app_settings.corpus_dir, "b.md", "# B\n\nBison roam.\n")
        run_ingest(app_settings, emb)
        with holder.lease() as new:
            assert (old.generation, new.generation) == (1, 2)
            assert holder.open_snapshots == 2
        # the old lease still reads its own generation, whole
        assert [d.path for d in old.documents()] == ["a.md"]
        assert old.search_lexical("bison", 5) == []
    assert holder.open_snapshots == 0  # no read transaction outlives its lease
    with pytest.raises(sqlite3.ProgrammingError):
        old.documents()
    holder.close()


def test_snapshots_are_closed_outside_their_leases(app_settings):
    emb = HashingEmbedder()
    holder = holder_for(app_settings)
    seen = []
    for i in range(8):
        write(app_settings.corpus_dir, f"d{i}.md", f"# D{i}\n\nDocument number {i}.\n")
        run_ingest(app_settings, emb)
        seen.append(holder.current())
        assert seen[-1].generation == i + 1 and holder.open_snapshots == 0
    for old in seen:
        with pytest.raises(sqlite3.ProgrammingError):  # closed: its read transaction is gone
            old.documents()
    with holder.lease() as snap:
        assert len(snap.documents()) == 8 and holder.open_snapshots == 1
    holder.close()
    with pytest.raises(IndexNotReady):
        holder.current()


def test_readers_during_commits_see_whole_generations_in_order(app_settings):
    """Readers lease and read while a writer commits 15 generations: no errors, generations
    never go back for a reader, and each lease reads one consistent generation (generation
    g holds exactly the documents d0..d{g-1}, each with its chunk)."""
    emb = HashingEmbedder()
    write(app_settings.corpus_dir, "d0.md", "# D0\n\nDocument zero about tapirs.\n")
    run_ingest(app_settings, emb)
    holder = holder_for(app_settings)
    done = threading.Event()

    def writer() -> None:
        for i in range(1, 16):
            write(app_settings.corpus_dir, f"d{i}.md", f"# D{i}\n\nDocument {i} about tapirs.\n")
            run_ingest(app_settings, emb)
        done.set()

    def reader() -> list[int]:
        seen = []
        while not done.is_set():
            with holder.lease() as snap:
                g = snap.generation
                paths = sorted(d.path for d in snap.documents())
                assert paths == sorted(f"d{i}.md" for i in range(g))
                assert len(snap.chunk_ids()) == snap.chunk_count == g
                assert len(snap.search_lexical("tapirs", 50)) == g
                assert snap.dense.ntotal == g
                seen.append(g)
        return seen

    with ThreadPoolExecutor(5) as pool:
        readers = [pool.submit(reader) for _ in range(4)]
        pool.submit(writer).result()
        for r in readers:
            seen = r.result()
            assert seen == sorted(seen) and seen
    assert holder.current().generation == 16
    holder.close()


class CountingEmbedder(HashingEmbedder):
    """Records how many ingests embed at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self.active = self.most = 0
        self._lock = threading.Lock()

    def embed(self, texts, *, urgent=False):
        with self._lock:
            self.active += 1
            self.most = max(self.most, self.active)
        time.sleep(0.05)  # widen the window two overlapping runs would share
        try:
            return super().embed(texts, urgent=urgent)
        finally:
            with self._lock:
                self.active -= 1


def test_concurrent_triggers_run_one_ingest_at_a_time(app_settings):
    emb = CountingEmbedder()
    holder = holder_for(app_settings)
    runner = IngestRunner(app_settings, emb, holder)
    reports = []

    def trigger(i: int) -> None:
        write(app_settings.corpus_dir, f"f{i}.md", f"# F{i}\n\nFile {i} about lemurs.\n")
        reports.append(runner.run("api" if i % 2 else "watch"))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(trigger, range(24)))
    assert emb.most == 1
    runs = list({id(r): r for r in reports}.values())  # callers that shared a run share its report
    added = sorted(p for r in runs for p in r.added)
    assert added == sorted(f"f{i}.md" for i in range(24))  # each file added by one run only
    changed_gens = [r.generation for r in runs if r.added]
    assert len(changed_gens) == len(set(changed_gens))
    assert holder.current().document_count == 24
    assert runner.status()["runs"] == len(runs) and runner.status()["failures"] == 0
    holder.close()


def test_triggers_during_a_run_share_the_next_one(app_settings):
    """Six callers: the first run is held up (another process's lock); the five that arrive
    meanwhile are all served by ONE run after it, not five."""
    holder = holder_for(app_settings)
    runner = IngestRunner(app_settings, HashingEmbedder(), holder)
    app_settings.index_dir.mkdir()
    with open(app_settings.index_dir / "ingest.lock", "w") as lock, ThreadPoolExecutor(6) as pool:
        fcntl.flock(lock, fcntl.LOCK_EX)
        write(app_settings.corpus_dir, "first.md", "# First\n\nFerrets.\n")
        first = pool.submit(runner.run, "api")
        while runner.running is None:
            time.sleep(0.01)
        later = []
        for i in range(5):
            write(app_settings.corpus_dir, f"later{i}.md", f"# Later {i}\n\nLynxes.\n")
            later.append(pool.submit(runner.run, "api"))
        time.sleep(0.3)
        fcntl.flock(lock, fcntl.LOCK_UN)
        reports = [f.result(timeout=30) for f in later]
    # the first run scans once it has the lock, so it found every file...
    assert first.result().added == ["first.md"] + [f"later{i}.md" for i in range(5)]
    # ...and the five that asked during it shared one run after it, which had nothing to do
    assert all(r is reports[0] for r in reports) and reports[0] is not first.result()
    assert reports[0].unchanged and not reports[0].added
    assert runner.status()["runs"] == 2
    holder.close()


def test_an_ingest_in_another_process_is_waited_for(app_settings):
    """The index's file lock, held here as another process's ingest would hold it."""
    write(app_settings.corpus_dir, "a.md", "# A\n\nAardvarks.\n")
    holder = holder_for(app_settings)
    runner = IngestRunner(app_settings, HashingEmbedder(), holder)
    app_settings.index_dir.mkdir()
    with open(app_settings.index_dir / "ingest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(runner.run, "api")
            time.sleep(1.0)
            assert not pending.done() and runner.status()["running"] == "api"
            fcntl.flock(lock, fcntl.LOCK_UN)
            assert pending.result(timeout=30).added == ["a.md"]
    holder.close()


def test_a_failed_ingest_is_reported_and_the_next_one_runs(app_settings):
    holder = holder_for(app_settings)
    runner = IngestRunner(app_settings, HashingEmbedder(), holder)
    app_settings.corpus_dir.rmdir()
    with pytest.raises(IngestFailed) as failed:
        runner.run("api")
    assert failed.value.status == 409 and "does not exist" in str(failed.value)
    assert runner.status()["last"]["ok"] is False and runner.status()["failures"] == 1
    app_settings.corpus_dir.mkdir()
    write(app_settings.corpus_dir, "a.md", "# A\n\nAardvarks.\n")
    assert runner.run("api").added == ["a.md"]
    assert runner.status()["last"]["ok"] is True
    holder.close()


def test_a_newly_refused_file_is_seen_without_a_content_change(app_settings):
    emb = HashingEmbedder()
    write(app_settings.corpus_dir, "a.md", "# A\n\nAardvarks.\n")
    run_ingest(app_settings, emb)
    holder = holder_for(app_settings)
    first = holder.current()
    write(app_settings.corpus_dir, "bad.pdf", b"not a pdf")
    report = run_ingest(app_settings, emb)
    assert report.generation == 1 and report.failed  # the content did not change...
    with holder.lease() as second:
        assert second.revision != first.revision  # ...this did
        assert [f[0] for f in second.failures()] == ["bad.pdf"]
        assert second.dense is first.dense  # and the FAISS index was not loaded again
    run_ingest(app_settings, emb)  # nothing new at all: the same generation serves on
    third = holder.current()
    assert third.revision == second.revision and third.dense is first.dense
    holder.close()
