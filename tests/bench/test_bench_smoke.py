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


def write_beir(folder, docs: dict[str, str], judged: dict[str, list[str]]) -> None:
    """A tiny BEIR-format folder: corpus, queries and test judgements."""
    import json

    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": d, "title": f"T{d}", "text": t}) + "\n" for d, t in docs.items()))
    (folder / "queries.jsonl").write_text("".join(
        json.dumps({"_id": q, "text": f"question {q}"}) + "\n" for q in judged))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t1\n" for q, ds in judged.items() for d in ds))


def test_bench_peer_subset_puts_judged_abstracts_first_and_keeps_covered_questions(tmp_path):
    from tests.bench.bench_peer import scifact_subset

    write_beir(tmp_path, {str(i): f"abstract {i}" for i in range(1, 9)},
               {"q1": ["7"], "q2": ["8", "2"], "q3": ["5"]})
    docs, questions = scifact_subset(tmp_path, 3)
    # the judged 2, 5, 7, 8 come first (corpus order), cut at 3: q2 loses its 8
    assert list(docs) == ["2", "5", "7"]
    assert questions == ["question q1", "question q3"]
    docs, questions = scifact_subset(tmp_path, 6)
    assert list(docs) == ["2", "5", "7", "8", "1", "3"]
    assert len(questions) == 3


def test_bench_peer_without_its_venv_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    from tests.bench import bench_peer

    monkeypatch.setattr(bench_peer, "PEER_INSTALLED", bench_peer.ROOT / "no-venv" / ".installed")
    assert bench_peer.main(["--data", str(tmp_path)]) == {}
    out = capsys.readouterr().out
    assert "skipped" in out and "make peer-venv" in out
