"""The SQLite store's FAISS index past RAG_ANN_MIN_CHUNKS: HNSW instead of exhaustive search,
rebuilt from the store like the exact one, its kind part of what makes a saved file current,
and filtered search that still finds every allowed chunk. Thresholds are set low so a small
store gets an HNSW index."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from ingest.settings import IngestSettings
from ingest.store import ChunkFilter
from ingest.store.sqlite.dense import EXACT, DenseParams, dense_path, exact_among, search
from ingest.store.sqlite.snapshot import SqliteSnapshot
from ingest.sync import run_ingest
from tests.helpers import write

HNSW = DenseParams(ann_min_chunks=10, m=8, ef_construction=40, ef_search=64)
FLAT = DenseParams(ann_min_chunks=1_000_000)
WORDS = ("albatross buzzard condor dipper egret falcon gannet heron ibis jay kite lark "
         "merlin nightjar osprey petrel quail raven swift tern").split()


def _corpus(settings: IngestSettings) -> None:
    """40 chunks: 20 documents of 2 sections each, each about one bird; two under notes/."""
    for n, word in enumerate(WORDS):
        folder = "notes" if n < 2 else "birds"
        write(settings.corpus_dir, f"{folder}/{word}.md",
              f"# {word}\n\nThe {word} nests on cliffs.\n\n## Diet\n\nThe {word} eats fish.\n")


def _ingested(settings: IngestSettings, hashing_embedder, dense: DenseParams) -> IngestSettings:
    s = settings.model_copy(update={"ann_min_chunks": dense.ann_min_chunks, "hnsw_m": dense.m,
                                    "hnsw_ef_construction": dense.ef_construction,
                                    "hnsw_ef_search": dense.ef_search})
    _corpus(s)
    run_ingest(s, hashing_embedder)
    return s


def _is_hnsw(index: faiss.Index) -> bool:
    return isinstance(faiss.downcast_index(index.index), faiss.IndexHNSW)


def test_hnsw_index_past_the_threshold_finds_what_exact_search_finds(settings, hashing_embedder):
    s = _ingested(settings, hashing_embedder, HNSW)
    query = hashing_embedder.embed(["the heron eats fish"])[0]
    with SqliteSnapshot.open(s.index_dir, dense_params=HNSW) as snap:
        assert _is_hnsw(snap.dense) and snap.dense.ntotal == 40
        assert dense_path(s.index_dir, snap.commit, HNSW.kind(40)).exists()
        hits = snap.search_dense(query, 5)
        exact = exact_among(snap.dense, query, 5, np.array(snap.chunk_ids(), dtype=np.int64))
        assert hits[0] == exact[0]  # the rest tie (the same words): compare their scores
        assert np.allclose([s for _, s in hits], [s for _, s in exact])
        assert snap.chunks([hits[0][0]])[0].path == "birds/heron.md"
        assert abs(hits[0][1] - snap.similarities(query, [hits[0][0]])[0]) < 1e-5


def test_filtered_hnsw_search_returns_every_allowed_chunk(settings, hashing_embedder):
    s = _ingested(settings, hashing_embedder, HNSW)
    query = hashing_embedder.embed(["the heron eats fish"])[0]
    with SqliteSnapshot.open(s.index_dir, dense_params=HNSW) as snap:
        notes = ChunkFilter(path_glob="notes/*")
        hits = snap.search_dense(query, 10, where=notes)  # 4 chunks allowed, k = 10
        assert sorted(i for i, _ in hits) == snap.chunk_ids(notes)
        assert {c.path for c in snap.chunks([i for i, _ in hits])} == {
            "notes/albatross.md", "notes/buzzard.md"}
        birds = ChunkFilter(path_glob="birds/*")  # 36 allowed: through the graph
        hits = snap.search_dense(query, 3, where=birds)
        assert len(hits) == 3 and snap.chunks([hits[0][0]])[0].path == "birds/heron.md"


def test_a_selector_the_graph_walk_misses_falls_back_to_exact_search():
    """The premise first: HNSW with a selector allowing only chunks far from the query ends
    its walk with fewer than k of them. search() then scores the allowed ones exactly."""
    faiss.omp_set_num_threads(1)  # one thread: the same graph every run
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((3000, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(1000, 4000, dtype=np.int64)
    index = faiss.IndexIDMap2(faiss.IndexHNSWSQ(32, faiss.ScalarQuantizer.QT_fp16, 8,
                                                faiss.METRIC_INNER_PRODUCT))
    index.add_with_ids(vecs, ids)
    query = vecs[:1]
    allowed = np.sort(ids[np.argsort(vecs @ query[0])[:12]])  # the 12 farthest from the query
    params = DenseParams(ann_min_chunks=10, m=8, ef_construction=40, ef_search=10)
    walked = index.search(query, 10, params=faiss.SearchParametersHNSW(
        sel=faiss.IDSelectorBatch(allowed), efSearch=10))[1][0]
    assert (walked == -1).any()
    hits = search(index, query, 10, allowed, params)
    assert len(hits) == 10 and {i for i, _ in hits} <= set(allowed.tolist())
    assert hits == exact_among(index, query, 10, allowed)
    scores = vecs[allowed - 1000] @ query[0]
    assert [i for i, _ in hits] == allowed[np.argsort(-scores)][:10].tolist()


def test_a_reader_without_the_graph_searches_exactly_and_the_ingest_writes_it(
        settings, hashing_embedder):
    """Building a graph takes minutes at 1M chunks: a reader whose HNSW file is missing (a
    publish not done yet, a crash, a deleted file) searches an exact index built in memory
    instead, and the next ingest's publish writes the graph."""
    s = _ingested(settings, hashing_embedder, HNSW)
    query = hashing_embedder.embed(["the osprey nests"])[0]
    with SqliteSnapshot.open(s.index_dir, dense_params=HNSW) as snap:
        path = dense_path(s.index_dir, snap.commit, HNSW.kind(40))
        assert _is_hnsw(snap.dense)
        before = snap.search_dense(query, 3)
    path.unlink()
    with SqliteSnapshot.open(s.index_dir, dense_params=HNSW) as snap:
        assert not _is_hnsw(snap.dense) and snap.dense.ntotal == 40
        after = snap.search_dense(query, 3)
        assert after[0][0] == before[0][0] and np.isclose(after[0][1], before[0][1])
    assert not path.exists()
    run_ingest(s, hashing_embedder)  # nothing changed: its publish writes the missing graph
    assert path.exists()
    with SqliteSnapshot.open(s.index_dir, dense_params=HNSW) as snap:
        assert _is_hnsw(snap.dense)


def test_the_kind_of_index_decides_whether_a_saved_file_is_current(settings, hashing_embedder):
    """An index published exact is not taken for the graph a reader's settings ask for (it
    searches exactly, in memory, until an ingest writes the graph), an HNSW file is not taken
    for an exact one, and the next ingest with those settings drops the other kind's file."""
    s = _ingested(settings, hashing_embedder, FLAT)
    with SqliteSnapshot.open(s.index_dir, dense_params=FLAT) as snap:
        commit, flat = snap.commit, dense_path(s.index_dir, snap.commit, EXACT)
        assert not _is_hnsw(snap.dense) and flat.exists()
    hnsw = dense_path(s.index_dir, commit, HNSW.kind(40))
    with SqliteSnapshot.open(s.index_dir, dense_params=HNSW) as snap:
        assert not _is_hnsw(snap.dense) and not hnsw.exists()
    run_ingest(s.model_copy(update={"ann_min_chunks": 10, "hnsw_m": 8,
                                    "hnsw_ef_construction": 40}), hashing_embedder)
    assert hnsw.exists() and not flat.exists()
    with SqliteSnapshot.open(s.index_dir, dense_params=FLAT) as snap:
        assert not _is_hnsw(snap.dense)  # rebuilt exact: the graph's file is not its kind
    assert flat.exists()
    other_m = DenseParams(ann_min_chunks=10, m=12, ef_construction=40)
    assert other_m.kind(40) != HNSW.kind(40)  # the graph's build parameters name it too
    write(s.corpus_dir, "birds/wren.md", "# wren\n\nThe wren sings.\n")
    now = s.model_copy(update={"ann_min_chunks": 10})
    run_ingest(now, hashing_embedder)
    left = sorted(p.name for p in s.index_dir.glob("dense-*.faiss"))
    assert len(left) == 1 and left[0].endswith(f".{DenseParams.of(now).kind(41)}.faiss")


def test_exact_below_the_threshold_and_search_time_ef_from_the_reader(settings,
                                                                       hashing_embedder):
    s = _ingested(settings, hashing_embedder, HNSW)
    assert DenseParams(ann_min_chunks=41).kind(40) == EXACT
    assert DenseParams(ann_min_chunks=40).kind(40) != EXACT
    wider = DenseParams(ann_min_chunks=10, m=8, ef_construction=40, ef_search=200)
    with SqliteSnapshot.open(s.index_dir, dense_params=wider) as snap:  # the saved file
        assert faiss.downcast_index(snap.dense.index).hnsw.efSearch == 200


def test_the_split_exhaustive_scan_finds_what_one_scan_finds():
    """Past SPLIT_MIN_CHUNKS an unfiltered exact search scans one range of codes per core at
    once: the same top k, ids and scores, as one scan of them all (ids not in insertion
    order, duplicated vectors for ties across the ranges)."""
    from ingest.store.sqlite import dense

    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((5000, 32)).astype(np.float32)
    vecs[4000:4100] = vecs[:100]  # the same vectors in the first and the last range
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = dense.empty_index(32, EXACT, FLAT)
    # ids in reverse: the copy of row 0 (row 4000, a later range) has the smaller id
    index.add_with_ids(vecs, np.arange(15_000, 10_000, -1, dtype=np.int64))
    by_rank = lambda hits: sorted(hits, key=lambda h: (-h[1], h[0]))  # noqa: E731
    for query, k in ((vecs[:1], 50), (rng.standard_normal((1, 32)).astype(np.float32), 50),
                     (vecs[:1], 5000)):
        whole = by_rank(dense._hits(*index.search(query, k)))
        for parts in (2, 3, 7):
            split = dense.split_scan(index, query, k, parts)
            assert len(split) == k
            assert by_rank(split) == split  # already in rank order
            assert [i for i, _ in split] == [i for i, _ in whole]
            assert np.allclose([s for _, s in split], [s for _, s in whole], atol=1e-6)
    top = dense.split_scan(index, vecs[:1], 2, 2)  # the tie: row 0 and its copy, by id
    assert top == [(11_000, top[0][1]), (15_000, top[0][1])]


def _counted_splits(monkeypatch, cores: int) -> list[tuple]:
    """The arguments of every split_scan call, on `cores` cores, splitting from 30 chunks."""
    from ingest.store.sqlite import dense

    calls: list[tuple] = []
    real = dense.split_scan
    monkeypatch.setattr(dense, "split_scan", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    monkeypatch.setattr(dense, "_SCAN_PARTS", cores)
    monkeypatch.setattr(dense, "SPLIT_MIN_CHUNKS", 30)
    return calls


def _unit_vectors(seed: int, n: int, dim: int = 32) -> np.ndarray:
    vecs = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_only_a_big_unfiltered_exact_search_is_split(monkeypatch):
    """The split is for the exhaustive index alone: not for HNSW, not under a filter (an id
    selector of its own), not below SPLIT_MIN_CHUNKS."""
    from ingest.store.sqlite import dense

    calls = _counted_splits(monkeypatch, 2)
    vecs = _unit_vectors(5, 40)
    ids = np.arange(100, 140, dtype=np.int64)
    flat, graph = dense.empty_index(32, EXACT, FLAT), dense.empty_index(32, "hnsw", HNSW)
    for index in (flat, graph):
        index.add_with_ids(vecs, ids)
    query = vecs[:1]
    assert search(flat, query, 5, None, FLAT)[0][0] == 100 and len(calls) == 1
    assert search(flat, query, 5, ids[:20], FLAT)[0][0] == 100 and len(calls) == 1
    assert search(graph, query, 5, None, HNSW)[0][0] == 100 and len(calls) == 1
    monkeypatch.setattr(dense, "SPLIT_MIN_CHUNKS", 41)
    assert search(flat, query, 5, None, FLAT)[0][0] == 100 and len(calls) == 1


def test_a_scan_takes_only_the_cores_no_other_scan_holds(monkeypatch):
    """Under load (every core already scanning for another request) a scan runs whole on its
    own thread, with the same top k as the split one; the cores it held are given back."""
    from ingest.store.sqlite import dense

    calls = _counted_splits(monkeypatch, 3)
    vecs = _unit_vectors(6, 60)
    flat = dense.empty_index(32, EXACT, FLAT)
    flat.add_with_ids(vecs, np.arange(200, 260, dtype=np.int64))
    alone = search(flat, vecs[:1], 8, None, FLAT)
    assert [a[-1] for a in calls] == [3] and dense._scanning == 0
    monkeypatch.setattr(dense, "_scanning", 1)  # one core busy: the other two split it
    assert search(flat, vecs[:1], 8, None, FLAT) == alone
    assert [a[-1] for a in calls] == [3, 2] and dense._scanning == 1
    monkeypatch.setattr(dense, "_scanning", 3)  # all busy: one scan, here
    assert search(flat, vecs[:1], 8, None, FLAT) == alone
    assert len(calls) == 2 and dense._scanning == 3


def test_a_whole_scan_orders_ties_as_a_split_one_and_gives_its_cores_back(monkeypatch):
    from ingest.store.sqlite import dense

    calls = _counted_splits(monkeypatch, 2)
    vecs = _unit_vectors(7, 60)
    vecs[40:] = vecs[:20]  # ties: each of the first 20 again, 40 rows later
    flat = dense.empty_index(32, EXACT, FLAT)
    flat.add_with_ids(vecs, np.arange(300, 360, dtype=np.int64))
    split = search(flat, vecs[:1], 6, None, FLAT)
    monkeypatch.setattr(dense, "_scanning", 2)
    assert search(flat, vecs[:1], 6, None, FLAT) == split and len(calls) == 1
    assert [i for i, _ in split[:2]] == [300, 340]  # the tie, by id
    monkeypatch.setattr(dense, "_scanning", 0)

    def broken(*args):
        raise RuntimeError("scan failed")

    monkeypatch.setattr(dense, "split_scan", broken)
    with pytest.raises(RuntimeError, match="scan failed"):
        search(flat, vecs[:1], 6, None, FLAT)
    assert dense._scanning == 0
