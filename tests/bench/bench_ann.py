"""The SQLite store's FAISS index, exact against HNSW, in-process on stand-in vectors: what
RAG_ANN_MIN_CHUNKS (the switch point) and the RAG_HNSW_* defaults rest on.
`python -m tests.bench.bench_ann --chunks 100000,1000000`.

For each size: the vectors big_index.py generates for that many chunks (means of real MiniLM
sentence vectors), ~200 real MiniLM query embeddings (bench_hnsw's), and the exact top-10 by
float32 cosine (brute force, numpy). Then, built by the store's own code
(ingest.store.sqlite.dense), searched through its `search` with one thread as the service does:

- the exhaustive float16 index: build seconds, p50 / p95 ms per search, recall@10;
- HNSW over float16 codes (IndexHNSWSQ, what the store builds) with the settings' m and
  ef_construction: build seconds (two threads, as an ingest builds it), the file's MB, and at
  each ef_search recall@10 and p50 / p95 ms; `--flat-too` adds IndexHNSWFlat (float32 codes)
  for its recall and size beside it.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import faiss
import numpy as np

from ingest.embedders import build_embedder
from ingest.settings import IngestSettings
from ingest.store.sqlite.dense import DenseParams, empty_index, search
from tests.bench.bench_hnsw import K, Truth, query_texts
from tests.bench.big_index import corpus_sentences, generated
from tests.bench.report import print_table, write_json

EF_SEARCH = (64, 100, 200, 400, 800)


def stand_in(chunks: int, sentence_vecs: np.ndarray, sentences: list[str]) -> np.ndarray:
    """The chunk vectors big_index.py writes into a store of `chunks` chunks, in id order."""
    return np.vstack([v for _, v in generated(sentences, sentence_vecs, chunks)])


def _ms(times: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(times, n=100, method="inclusive")
    return {"p50_ms": round(qs[49], 2), "p95_ms": round(qs[94], 2)}


def _build(vecs: np.ndarray, params: DenseParams, flat_codes: bool = False) -> tuple:
    """(index, seconds, MB serialized), ids 1..n as in the store; two threads."""
    faiss.omp_set_num_threads(2)
    t0 = time.perf_counter()
    if flat_codes:
        inner = faiss.IndexHNSWFlat(vecs.shape[1], params.m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = params.ef_construction
        index = faiss.IndexIDMap2(inner)
    else:
        index = empty_index(vecs.shape[1], params.kind(len(vecs)), params)
    ids = np.arange(1, len(vecs) + 1, dtype=np.int64)
    for start in range(0, len(vecs), 100_000):
        index.add_with_ids(vecs[start:start + 100_000], ids[start:start + 100_000])
    seconds = time.perf_counter() - t0
    mb = faiss.serialize_index(index).nbytes / 2**20
    faiss.omp_set_num_threads(1)
    return index, round(seconds, 1), round(mb)


def _searched(index, queries: np.ndarray, truth: Truth, params: DenseParams) -> dict:
    found, times = [], []
    for q in [*queries[:10], *queries]:  # the first ten warm the caches
        t0 = time.perf_counter()
        hits = search(index, q.reshape(1, -1), K, None, params)
        times.append((time.perf_counter() - t0) * 1000)
        found.append({i for i, _ in hits})
    strict, tolerant = truth.recall(found[10:])
    return {"recall_at_10": strict, "recall_at_10_eps": tolerant, **_ms(times[10:])}


def measure(chunks: int, vecs: np.ndarray, queries: np.ndarray, base: DenseParams,
            flat_too: bool) -> list[dict]:
    truth = Truth(np.arange(1, len(vecs) + 1), vecs, queries)
    exact_params = DenseParams(ann_min_chunks=chunks + 1)
    index, build_s, mb = _build(vecs, exact_params)
    rows = [{"chunks": chunks, "index": "exact (float16)", "ef_search": "-", "build_s": build_s,
             "mb": mb, **_searched(index, truth.queries, truth, exact_params)}]
    del index
    kinds = [("HNSW float16 (IndexHNSWSQ)", False)] + ([("HNSW float32 (IndexHNSWFlat)", True)]
                                                        if flat_too else [])
    for name, flat_codes in kinds:
        index, build_s, mb = _build(vecs, DenseParams(1, base.m, base.ef_construction),
                                    flat_codes)
        for ef in EF_SEARCH:
            params = DenseParams(1, base.m, base.ef_construction, ef)
            faiss.downcast_index(index.index).hnsw.efSearch = ef
            rows.append({"chunks": chunks, "index": name, "ef_search": ef, "build_s": build_s,
                         "mb": mb, **_searched(index, truth.queries, truth, params)})
        print(f"  {chunks:,} chunks, {name}: built in {build_s} s", flush=True)
        del index
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunks", type=lambda t: [int(x) for x in t.split(",")],
                   default=[100_000, 1_000_000])
    p.add_argument("--flat-too", action="store_true", help="also IndexHNSWFlat, for its size")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    settings = IngestSettings()
    base = DenseParams.of(settings)
    embedder = build_embedder(IngestSettings())
    sentences = corpus_sentences()
    sentence_vecs = embedder.embed(sentences)
    queries = embedder.embed(query_texts())
    rows = []
    for chunks in args.chunks:
        rows += measure(chunks, stand_in(chunks, sentence_vecs, sentences), queries, base,
                        args.flat_too)
    print(f"\nFAISS exact against HNSW (m={base.m}, ef_construction={base.ef_construction}), "
          f"{len(queries)} queries, k={K}, one search thread")
    print_table(["chunks", "index", "ef_search", "build s", "MB", "recall@10",
                 f"within {Truth.EPSILON}", "p50 ms", "p95 ms"],
                [[f"{r['chunks']:,}", r["index"], r["ef_search"], r["build_s"], r["mb"],
                  r["recall_at_10"], r["recall_at_10_eps"], r["p50_ms"], r["p95_ms"]]
                 for r in rows])
    found = {"m": base.m, "ef_construction": base.ef_construction, "rows": rows}
    write_json(args.json, found)
    return found


if __name__ == "__main__":
    main()
