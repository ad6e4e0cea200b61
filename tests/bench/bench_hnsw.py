"""Dense search alone on an index both stores hold: pgvector's HNSW (halfvec, cosine) against
exact search, and SQLite's FAISS flat index beside it. Called by `make bench-ask` on the index
it generated; `python -m tests.bench.bench_hnsw --chunks N` builds one of its own.

- recall@10 of the HNSW search (through the store's own snapshot, `search_dense`, at each
  ef_search) against exact top-10 by cosine over the same stored float32 vectors, brute force in
  numpy; ~200 real MiniLM query embeddings (the starter eval's questions, the abstention set's,
  then corpus sentences);
- p50 / p95 ms per search (one client, in-process; PostgreSQL over its Unix socket);
- PostgreSQL's own exact scan (the same query with index scans off), for what the index saves;
- the time to build the HNSW index alone (dropped and made again by the store's own code, the
  settings' m and ef_construction), and its size.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from app.eval.starter import load_questions
from ingest.embedders import build_embedder
from ingest.settings import IngestSettings
from ingest.store.postgres.reader import PostgresReader
from tests.bench.big_index import build_big_index, corpus_sentences
from tests.bench.report import print_table, write_json
from tests.bench.stores import BenchStore, postgres_url
from tests.helpers import ROOT

K = 10
EF_SEARCH = (40, 100, 200)
EXACT_SQL_QUERIES = 20


def query_texts(n: int = 200) -> list[str]:
    asked = [r["q"] for r in load_questions()]
    asked += [json.loads(x)["q"] for x in (ROOT / "tests" / "data" /
                                           "abstention_questions.jsonl").read_text().splitlines()
              if x.strip()]
    texts = list(dict.fromkeys(asked))
    sentences = corpus_sentences()
    step = max(1, len(sentences) // max(1, n - len(texts)))
    texts += sentences[::step]
    return texts[:n]


def query_vectors(n: int = 200) -> np.ndarray:
    return build_embedder(IngestSettings()).embed(query_texts(n))


def stored_vectors(url: str, schema: str) -> tuple[np.ndarray, np.ndarray]:
    """(chunk ids, their float32 vectors, unit length): what exact search runs over."""
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(url) as conn:
        register_vector(conn)
        cur = conn.cursor(name="all_vectors")  # server-side: not all rows at once in Python
        cur.itersize = 20_000
        cur.execute(f'SELECT id, embedding FROM "{schema}".chunks ORDER BY id')
        ids, vecs = [], []
        for i, v in cur:
            ids.append(i)
            vecs.append(v.to_numpy() if hasattr(v, "to_numpy") else v)
    matrix = np.vstack(vecs).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(ids), matrix


class Truth:
    """Exact cosine top-k of each query over the stored vectors, and what it takes to score a
    found chunk exactly: for recall as ann-benchmarks counts it, a found chunk within EPSILON
    of the k-th exact score counts (a tie is not a miss), beside the strict set overlap."""

    EPSILON = 1e-3  # ann-benchmarks' default

    def __init__(self, ids: np.ndarray, matrix: np.ndarray, queries: np.ndarray) -> None:
        self.ids, self.matrix = ids, matrix
        self.queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        self.top: list[set[int]] = []
        self.kth: list[float] = []
        self.gap: list[float] = []  # k-th minus (k+1)-th exact score: how sharp the cut is
        for q in self.queries:
            scores = matrix @ q
            order = np.argpartition(-scores, K + 1)[:K + 1]
            order = order[np.argsort(-scores[order])]
            self.top.append({int(ids[i]) for i in order[:K]})
            self.kth.append(float(scores[order[K - 1]]))
            self.gap.append(float(scores[order[K - 1]] - scores[order[K]]))

    def recall(self, found: list[set[int]]) -> tuple[float, float]:
        """(strict recall@k, recall@k within EPSILON), averaged over the queries."""
        strict, tolerant = [], []
        for n, got in enumerate(found):
            strict.append(len(got & self.top[n]) / K)
            rows = np.searchsorted(self.ids, sorted(got))
            scores = self.matrix[rows] @ self.queries[n]
            tolerant.append(min(K, int((scores >= self.kth[n] - self.EPSILON).sum())) / K)
        return round(statistics.mean(strict), 3), round(statistics.mean(tolerant), 3)


def _ms(times: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(times, n=100, method="inclusive")
    return {"p50_ms": round(qs[49], 2), "p95_ms": round(qs[94], 2)}


def hnsw_rows(url: str, schema: str, queries: np.ndarray, truth: Truth) -> list[dict]:
    rows = []
    for ef in EF_SEARCH:
        reader = PostgresReader(url, schema, ef_search=ef)
        found, times = [], []
        try:
            for q in [*queries[:10], *queries]:  # the first ten warm the pool and the pages
                with reader.open() as snap:
                    t0 = time.perf_counter()
                    hits = snap.search_dense(q, K)
                    times.append((time.perf_counter() - t0) * 1000)
                found.append({i for i, _ in hits})
        finally:
            reader.close()
        found, times = found[10:], times[10:]
        strict, tolerant = truth.recall(found)
        rows.append({"store": "postgres", "search": "HNSW (halfvec, cosine)", "ef_search": ef,
                     "recall_at_10": strict, "recall_at_10_eps": tolerant, **_ms(times)})
    return rows


def exact_sql_row(url: str, schema: str, queries: np.ndarray) -> dict:
    """PostgreSQL's exact search: the store's query with the HNSW index turned off."""
    import psycopg
    from pgvector.psycopg import register_vector

    times = []
    with psycopg.connect(url) as conn:
        register_vector(conn)
        conn.execute("SET enable_indexscan = off")
        dim = queries.shape[1]
        for q in queries[:EXACT_SQL_QUERIES]:
            t0 = time.perf_counter()
            conn.execute(f'SELECT c.id, 1 - (c.embedding <=> %s) FROM "{schema}".chunks c '
                         f"ORDER BY c.embedding::halfvec({dim}) <=> %s::halfvec({dim}) "
                         "LIMIT %s", (q, q, K)).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
    return {"store": "postgres", "search": "exact (index scans off)", "ef_search": "-",
            "recall_at_10": "-", "recall_at_10_eps": "-", **_ms(times)}


def chunk_keys(url: str, schema: str, ids: set[int]) -> dict[int, tuple[str, int]]:
    """(document path, ordinal) of PostgreSQL chunk ids: what names a chunk in both stores."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(f'SELECT c.id, d.path, c.ordinal FROM "{schema}".chunks c JOIN '
                            f'"{schema}".documents d ON d.id = c.doc_id WHERE c.id = ANY(%s)',
                            (sorted(ids),)).fetchall()
    return {i: (path, ordinal) for i, path, ordinal in rows}


def sqlite_row(index_dir: Path, queries: np.ndarray, truth: list[set[tuple[str, int]]]) -> dict:
    """SQLite's dense search (FAISS flat float16, exact but for the rounding; HNSW past
    RAG_ANN_MIN_CHUNKS) on the same documents, against the same exact top-10 (chunks named by
    path and ordinal)."""
    from ingest.store.sqlite.dense import EXACT, DenseParams
    from ingest.store.sqlite.reader import SqliteReader

    params = DenseParams()  # the service's defaults: exact or HNSW by the size
    reader = SqliteReader(index_dir, dense=params)
    found, times = [], []
    try:
        for q in [*queries[:10], *queries]:
            with reader.open() as snap:
                t0 = time.perf_counter()
                hits = snap.search_dense(q, K)
                times.append((time.perf_counter() - t0) * 1000)
                found.append({(c.path, c.ordinal) for c in snap.chunks([i for i, _ in hits])})
    finally:
        reader.close()
    found, times = found[10:], times[10:]
    recall = statistics.mean(len(f & t) / K for f, t in zip(found, truth))
    kind = params.kind(snap.chunk_count)
    return {"store": "sqlite", "search": f"FAISS {kind} (float16)",
            "ef_search": params.ef_search if kind != EXACT else "-",
            "recall_at_10": round(recall, 3), "recall_at_10_eps": "-", **_ms(times)}


def rebuild_time(url: str, schema: str, m: int, ef_construction: int) -> dict:
    """Seconds to build the HNSW index anew (the store's own statement and memory), its size."""
    import psycopg

    from ingest.store.postgres.dense import ensure_hnsw

    with psycopg.connect(url, autocommit=True) as conn:
        dim = int(conn.execute(f'SELECT value FROM "{schema}".meta WHERE key = %s',
                               ("dim",)).fetchone()[0])
        t0 = time.perf_counter()
        with conn.transaction():
            conn.execute(f'DELETE FROM "{schema}".meta WHERE key = %s', ("hnsw",))
            ensure_hnsw(conn, schema, dim, m, ef_construction)
        seconds = time.perf_counter() - t0
        size = conn.execute("SELECT pg_relation_size(to_regclass(%s))",
                            (f'"{schema}".chunks_hnsw',)).fetchone()[0]
        workers = conn.execute("SHOW max_parallel_maintenance_workers").fetchone()[0]
    return {"m": m, "ef_construction": ef_construction, "build_s": round(seconds, 1),
            "index_mb": round(size / 2**20), "parallel_workers": workers}


def measure(url: str, schema: str, sqlite_dir: Path | None, queries: np.ndarray,
            m: int = 16, ef_construction: int = 64) -> dict:
    """Everything above on an index both stores hold (or PostgreSQL alone)."""
    ids, matrix = stored_vectors(url, schema)
    truth = Truth(ids, matrix, queries)
    rows = hnsw_rows(url, schema, queries, truth)
    rows.append(exact_sql_row(url, schema, queries))
    if sqlite_dir is not None:
        keys = chunk_keys(url, schema, set().union(*truth.top))
        rows.append(sqlite_row(sqlite_dir, queries, [{keys[i] for i in t} for t in truth.top]))
    return {"chunks": len(ids), "queries": len(queries), "rows": rows,
            "kth_score_p50": round(statistics.median(truth.kth), 4),
            "gap_p50": round(statistics.median(truth.gap), 5),
            "build": rebuild_time(url, schema, m, ef_construction)}


def print_report(found: dict) -> None:
    b = found["build"]
    print(f"\nDense search alone, {found['chunks']:,} chunks, {found['queries']} queries, "
          f"k={K}; HNSW m={b['m']}, ef_construction={b['ef_construction']}: built in "
          f"{b['build_s']} s ({b['parallel_workers']} parallel workers), {b['index_mb']} MB")
    print(f"exact 10th score p50 {found['kth_score_p50']}, 10th minus 11th p50 "
          f"{found['gap_p50']} (how sharp the top-10's edge is)")
    print_table(["store", "search", "ef_search", "recall@10", f"within {Truth.EPSILON}",
                 "p50 ms", "p95 ms"],
                [[r["store"], r["search"], r["ef_search"], r["recall_at_10"],
                  r["recall_at_10_eps"], r["p50_ms"], r["p95_ms"]] for r in found["rows"]])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunks", type=int, default=100_000, help="the generated index's size")
    p.add_argument("--schema", help="measure this existing index instead (RAG_DATABASE_URL's)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    with postgres_url(["postgres"]) as url, tempfile.TemporaryDirectory() as tmp:
        embedder = build_embedder(IngestSettings())
        queries = embedder.embed(query_texts())
        schema = args.schema
        if schema is None:
            schema, sentences = "bench_hnsw", corpus_sentences()
            store = BenchStore("postgres", Path(tmp), url, schema).fresh()
            print(build_big_index(store.settings(Path(tmp)), args.chunks, sentences,
                                  embedder.embed(sentences)), flush=True)
        found = measure(url, schema, None, queries)
    print_report(found)
    write_json(args.json, found)
    return found


if __name__ == "__main__":
    main()
