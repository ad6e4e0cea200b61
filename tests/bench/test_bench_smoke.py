"""The benchmarks still run (tiny sizes): a refactor that breaks one is found by make test, not
by the next person to measure."""
from __future__ import annotations

import pytest

from tests.bench import bench_middleware


def test_bench_middleware_runs(capsys):
    bench_middleware.main(["--batches", "2", "--per-batch", "20"])
    table = capsys.readouterr().out
    assert "| + both (as served) |" in table and "share of a 28 ms /ask" in table


def test_bench_ask_times_the_labelled_follow_ups_three_ways():
    from tests.bench.bench_ask import follow_ups

    kinds = follow_ups()
    assert list(kinds) == ["follow-up with history", "its rewrite, no history",
                           "follow-up alone"]
    with_history, rewritten, alone = kinds.values()
    assert len(with_history) == len(rewritten) == len(alone) >= 30
    assert all(b["history"] for b in with_history) and "history" not in rewritten[0]
    assert sum(r["question"] != a["question"] for r, a in zip(rewritten, alone)) >= 30


@pytest.mark.slow  # ingests the starter corpus with the real model
def test_bench_extractive_runs(capsys):
    from tests.bench import bench_extractive

    bench_extractive.main(["--questions", "3"])
    table = capsys.readouterr().out
    assert "| added (cold - words alone) |" in table


def test_bench_ingest_runs_on_both_stores(pg_url, monkeypatch, capsys):
    from tests.bench import bench_ingest

    monkeypatch.setenv("RAG_DATABASE_URL", pg_url)
    rows = bench_ingest.main(["--docs", "3", "--pdfs", "2", "--pdf-pages", "2", "--repeat", "2",
                              "--embedder", "hashing", "--store", "sqlite,postgres"])
    assert {(r["corpus"], r["store"]) for r in rows} == {
        (c, s) for c in ("starter", "generated", "pdf") for s in ("sqlite", "postgres")}
    # with and without the overlap, on the first store
    assert all(("overlap_gain" in r) == (r["store"] == "sqlite") for r in rows)
    out = capsys.readouterr().out
    assert "| starter | hashing-v1 |" in out  # the ratio table
    assert "| pdf | sqlite | hashing-v1 |" in out  # the overlap table


def test_the_big_index_lands_in_both_stores_and_hnsw_recall_is_measured(pg_url, tmp_path):
    """The generated index through the writer seam, the same in each store; the HNSW bench on
    it (random stand-in vectors: seconds, not minutes); the memory of the server."""
    import numpy as np

    from tests.bench import bench_hnsw
    from tests.bench.big_index import build_big_index, corpus_sentences
    from tests.bench.stores import BenchStore, drop_schema, server_memory

    sentences = corpus_sentences()
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(sentences), 384)).astype(np.float32)
    stores = [BenchStore(n, tmp_path / n, pg_url, "bench_smoke").fresh()
              for n in ("sqlite", "postgres")]
    try:
        for store in stores:
            times = build_big_index(store.settings(tmp_path), 300, sentences, vecs)
            assert times["commit_s"] >= 0
        found = bench_hnsw.measure(pg_url, "bench_smoke", tmp_path / "sqlite",
                                   rng.standard_normal((30, 384)).astype(np.float32))
    finally:
        drop_schema(pg_url, "bench_smoke")
    assert found["chunks"] == 300 and found["build"]["build_s"] >= 0
    by_search = {(r["store"], r["ef_search"]): r for r in found["rows"]}
    assert by_search[("postgres", 200)]["recall_at_10"] >= 0.9  # 300 chunks: nearly exact
    assert by_search[("sqlite", "-")]["recall_at_10"] >= 0.99  # flat: exact but for float16
    assert server_memory(pg_url)["rss_mb"] > 0
