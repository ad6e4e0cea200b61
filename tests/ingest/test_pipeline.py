"""Loading and chunking on a thread of their own, ahead of the embedding (ingest/pipeline.py,
used by ingest/sync.py): the same results as reading everything first on one thread, errors on
either side stop both, and the reading never runs further ahead than its bound."""
from __future__ import annotations

import re
import sqlite3
import threading
import time

import pytest

from ingest import sync
from ingest.embedders import HashingEmbedder
from ingest.errors import IndexNotFoundError, IndexStorageError
from ingest.pipeline import Prefetch
from ingest.settings import IngestSettings
from ingest.store.sqlite.store import DB_NAME, SqliteStore
from ingest.sync import run_ingest
from tests.helpers import store_state, write


def make_pdf(pages: list[str]) -> bytes:
    from datetime import datetime, timezone

    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=timezone.utc))  # the same bytes each time
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def reading_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ingest-read"]


# --- Prefetch on its own ---------------------------------------------------------------------

def counted(n: int, threads: list):
    """0..n-1, noting the thread that makes each."""
    for i in range(n):
        threads.append(threading.current_thread())
        yield i


def test_items_arrive_in_order_from_another_thread():
    threads: list = []
    with Prefetch(counted(50, threads), limit=3) as ahead:
        assert list(ahead) == list(range(50))
    assert threading.current_thread() not in threads


def test_limit_zero_makes_the_items_on_the_callers_thread():
    threads: list = []
    with Prefetch(counted(5, threads), limit=0) as ahead:
        assert list(ahead) == list(range(5))
    assert set(threads) == {threading.current_thread()}


def test_the_producer_never_holds_more_than_the_limit_by_weight():
    made, most_ahead = [], []

    def items():
        for i in range(40):
            made.append(i)
            yield [i] * (1 + i % 3)  # weighs 1, 2 or 3
    with Prefetch(items(), limit=5, weight=len) as ahead:
        taken = 0
        for item in ahead:
            taken += 1
            time.sleep(0.002)  # a slow consumer: the producer waits on the bound
            # in the queue: at most 5 by weight, so at most 5 items; one more in the making
            most_ahead.append(len(made) - taken)
    assert taken == 40 and max(most_ahead) <= 5 + 1


def test_an_item_heavier_than_the_limit_passes_alone():
    with Prefetch([[1] * 10, [2], [3] * 7], limit=4, weight=len) as ahead:
        assert [len(x) for x in ahead] == [10, 1, 7]


def test_an_exception_in_the_producer_is_raised_in_the_consumer_where_it_happened():
    def items():
        yield 1
        yield 2
        raise KeyError("a bug in the loader")
    seen = []
    with pytest.raises(KeyError, match="a bug in the loader"):
        with Prefetch(items(), limit=2, name="failing") as ahead:
            for item in ahead:
                seen.append(item)
    assert seen == [1, 2]
    assert not [t for t in threading.enumerate() if t.name == "failing"]


def test_a_consumer_that_stops_stops_the_producer_blocked_on_the_bound():
    cleaned = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            cleaned.set()
    with pytest.raises(RuntimeError, match="disk full"):
        with Prefetch(endless(), limit=2, name="endless") as ahead:
            for item in ahead:
                if item == 3:
                    time.sleep(0.05)  # the producer is blocked on a full queue by now
                    raise RuntimeError("disk full")
    assert not [t for t in threading.enumerate() if t.name == "endless"]
    assert cleaned.is_set()  # the generator was closed: its own cleanup ran


# --- the ingest --------------------------------------------------------------------------------

def make_settings(tmp_path, name: str, **extra) -> IngestSettings:
    return IngestSettings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / name,
                          embedder="hashing", **extra)


def vectors(settings: IngestSettings) -> dict:
    """Each chunk (path, ordinal) -> its vector key and vector bytes, as stored."""
    with sqlite3.connect(settings.index_dir / DB_NAME) as conn:
        rows = conn.execute("SELECT d.path, c.ordinal, c.vec_key, v.vector FROM chunks c "
                            "JOIN documents d ON d.id = c.doc_id "
                            "JOIN vectors v ON v.key = c.vec_key").fetchall()
    return {(p, o): (k, v) for p, o, k, v in rows}


def report_of(report) -> dict:
    out = report.as_json()
    out.pop("seconds")
    return out


def fill(corpus, version: str) -> None:
    for i in range(30):
        paras = [f"Paragraph {j} of note {i} ({version}) on item {i * 7 + j}. " * (1 + j % 4)
                 for j in range(6)]
        write(corpus, f"notes/n{i:02d}.md", f"# Note {i}\n\n" + "\n\n".join(paras))
    write(corpus, "shared-a.md", "# Shared\n\nThe very same text in two files.\n")
    write(corpus, "shared-b.md", "# Shared\n\nThe very same text in two files.\n")
    write(corpus, "empty.md", "   \n")  # refused: no text
    write(corpus, "report.pdf", make_pdf([f"Page {p} of the {version} report." for p in range(3)]))


def test_the_overlap_gives_what_reading_everything_first_gives(tmp_path, monkeypatch):
    """Same report, chunks, vector keys and vectors as the sequential path (limit 0), over a
    first ingest, a change (a deletion, a refused file, a re-used vector) and a rebuild."""
    corpus = tmp_path / "corpus"
    runs = {}
    for mode, ahead in (("sequential", 0), ("overlapped", 2)):
        monkeypatch.setattr(sync, "PREFETCH_CHECKPOINTS", ahead)
        settings = make_settings(tmp_path, f"index-{mode}", chunk_tokens=40, chunk_overlap=4,
                                 embed_checkpoint=16)
        fill(corpus, "v1")
        first = run_ingest(settings, HashingEmbedder())
        fill(corpus, "v2")
        (corpus / "notes/n03.md").unlink()
        write(corpus, "notes/n04.md", "# Note 4\n\nParagraph 0 of note 4 (v1) on item 28. \n")
        second = run_ingest(settings, HashingEmbedder())
        after_change = (store_state(settings), vectors(settings))
        rebuilt = run_ingest(settings, HashingEmbedder(), rebuild=True)
        runs[mode] = ([report_of(r) for r in (first, second, rebuilt)], after_change,
                      store_state(settings), vectors(settings))
        for rel in [p.relative_to(corpus) for p in corpus.rglob("*") if p.is_file()]:
            (corpus / rel).unlink()
    assert runs["overlapped"] == runs["sequential"]
    reports = runs["overlapped"][0]
    assert reports[0]["chunks"]["embedded"] > 3 * 16  # several checkpoints
    assert [f["path"] for f in reports[0]["files"]["failed"]] == ["empty.md"]
    assert reports[1]["files"]["deleted"] == ["notes/n03.md"]


def test_an_unexpected_error_while_loading_stops_the_run_without_a_commit(tmp_path,
                                                                          monkeypatch):
    settings = make_settings(tmp_path, "index", embed_checkpoint=4)
    for i in range(12):
        write(settings.corpus_dir, f"d{i:02d}.md", f"# D{i}\n\nDocument {i} says hello.\n")
    real = sync.load

    def load(path, data, options):
        if path.name == "d07.md":
            raise ZeroDivisionError("a bug in a loader")
        return real(path, data, options)
    monkeypatch.setattr(sync, "load", load)
    with pytest.raises(ZeroDivisionError, match="a bug in a loader"):
        run_ingest(settings, HashingEmbedder())
    assert not reading_threads()
    with pytest.raises(IndexNotFoundError):  # nothing was committed
        store_state(settings)
    monkeypatch.undo()
    run_ingest(settings, HashingEmbedder())
    before = store_state(settings)
    write(settings.corpus_dir, "d07.md", "# D7\n\nDocument 7 says goodbye.\n")
    monkeypatch.setattr(sync, "load", load)
    with pytest.raises(ZeroDivisionError):
        run_ingest(settings, HashingEmbedder())
    assert store_state(settings) == before and not reading_threads()


def test_a_failure_storing_vectors_stops_the_reading(tmp_path, monkeypatch):
    """A full disk at the first checkpoint: the error reaches the caller and the reading
    thread ends; it had read no more than its bound allows, not the whole corpus."""
    settings = make_settings(tmp_path, "index", embed_checkpoint=4)
    for i in range(60):
        write(settings.corpus_dir, f"d{i:02d}.md", f"# D{i}\n\nDocument {i} says hello.\n")
    loaded = count_loads(monkeypatch)

    def put_vectors(self, keys, vecs, *, replace=False):
        raise IndexStorageError("the disk is full")
    monkeypatch.setattr(SqliteStore, "put_vectors", put_vectors)
    with pytest.raises(IndexStorageError, match="disk is full"):
        run_ingest(settings, HashingEmbedder())
    assert not reading_threads()
    # one checkpoint (4 one-chunk files) taken, 2 checkpoints queued, one file in the making
    assert len(loaded) <= 4 + 2 * 4 + 1 < 60


def count_loads(monkeypatch) -> list[str]:
    """The files _load_and_chunk was called for, in order, as it starts each."""
    loaded: list[str] = []
    real = sync._load_and_chunk

    def load_and_chunk(f, *args):
        loaded.append(f.rel)
        return real(f, *args)
    monkeypatch.setattr(sync, "_load_and_chunk", load_and_chunk)
    return loaded


class SlowEmbedder(HashingEmbedder):
    """Takes its time, and notes at each call which files had been started then."""

    def __init__(self, loaded: list[str]) -> None:
        super().__init__()
        self.loaded, self.calls = loaded, []

    def embed(self, texts, *, urgent=False):
        time.sleep(0.02)
        docs = {int(m.group(1)) for t in texts for m in [re.search(r"Document (\d+)", t)] if m}
        self.calls.append((len(self.loaded), max(docs)))
        return super().embed(texts, urgent=urgent)


def test_the_reading_runs_at_most_its_bound_ahead_of_the_embedding(tmp_path, monkeypatch):
    settings = make_settings(tmp_path, "index", embed_checkpoint=4)
    for i in range(60):  # one chunk each
        write(settings.corpus_dir, f"d{i:02d}.md", f"# D{i}\n\nDocument {i} says hello.\n")
    embedder = SlowEmbedder(count_loads(monkeypatch))
    report = run_ingest(settings, embedder, progress=True)  # the bars too
    assert report.embedded == 60 and len(embedder.calls) == 15
    for started, last_embedded in embedder.calls:
        # files 0..last_embedded taken; two checkpoints' worth queued; one in the making
        assert started - (last_embedded + 1) <= 2 * 4 + 1
    # and it does read ahead: while the model works, the next files are being read
    assert max(started - (last_embedded + 1) for started, last_embedded in embedder.calls) > 0
