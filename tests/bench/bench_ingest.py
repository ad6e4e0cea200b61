"""`make bench-ingest`: is the ingest pipeline bound by the embedder, not by its own overhead?

For the starter corpus and for a generated corpus of >= 2,000 chunks it measures, on each store
(`--store sqlite,postgres`; both by default when a PostgreSQL can be had: RAG_DATABASE_URL, or
an embedded one started for the run), with the real all-MiniLM-L6-v2 (loaded once, outside
every timing) and with the hashing embedder (no model: the store's own cost shows):
- a full ingest into an empty index: chunks/s and tokens/s (tokens = the model's, per chunk);
- the raw `model.encode` throughput on exactly the same chunk texts, and pipeline/raw
  (= raw encode time / pipeline time; 1.0 would mean the pipeline costs nothing but encoding);
- a re-run with nothing changed;
- PostgreSQL's chunks/s against SQLite's (the stores' runs alternate, so noise hits both).
Prints markdown tables; `--json PATH` also writes the figures.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

from ingest.embedders import Embedder, HashingEmbedder, SentenceTransformerEmbedder
from ingest.store.sqlite.snapshot import SqliteSnapshot
from ingest.sync import run_ingest
from tests.bench.report import print_table, write_json
from tests.bench.stores import BenchStore, parse_stores, postgres_url
from tests.helpers import ROOT


def generate_corpus(target: Path, source: Path, n_docs: int, seed: int = 7) -> None:
    """Markdown documents made of the starter corpus' sentences, shuffled: realistic tokens."""
    words = []
    for path in sorted(source.rglob("*")):
        if path.suffix in (".md", ".txt"):
            words.append(path.read_text(encoding="utf-8-sig", errors="replace"))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(words))
                 if 40 <= len(s.strip()) <= 400 and "#" not in s]
    rng = random.Random(seed)
    target.mkdir(parents=True)
    for i in range(n_docs):
        parts = [f"# Generated document {i}"]
        for h in range(4):
            parts.append(f"## Part {h}")
            for _ in range(rng.randint(2, 5)):
                parts.append(" ".join(rng.choice(sentences) for _ in range(rng.randint(2, 7))))
        (target / f"doc-{i:04d}.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")


def chunk_rows(store: BenchStore) -> list[tuple[str, int]]:
    """(text, tokens) of every chunk the store holds."""
    if store.name == "sqlite":
        with SqliteSnapshot.open(store.index_dir) as snap:
            return snap._query("SELECT text, tokens FROM chunks")
    import psycopg

    with psycopg.connect(store.url or "") as conn:
        return conn.execute(f'SELECT text, tokens FROM "{store.schema}".chunks').fetchall()


def ingest_once(store: BenchStore, corpus: Path, embedder: Embedder) -> tuple[float, object]:
    settings = store.fresh().settings(corpus)
    started = time.perf_counter()
    report = run_ingest(settings, embedder, progress=False)
    return time.perf_counter() - started, report


def measure(name: str, corpus: Path, embedder: Embedder, stores: list[BenchStore],
            repeat: int) -> list[dict]:
    """Pipeline into each store and (a real model) raw encode, interleaved `repeat` times;
    the best time of each counts (the usual way to read through a noisy machine)."""
    times: dict[str, list[float]] = {s.name: [] for s in stores}
    raw_times = []
    for _ in range(repeat):
        for store in stores:
            seconds, report = ingest_once(store, corpus, embedder)
            times[store.name].append(seconds)
        rows = chunk_rows(stores[-1])
        texts = list(dict.fromkeys(t for t, _ in rows))  # what the pipeline embedded
        if isinstance(embedder, SentenceTransformerEmbedder):
            started = time.perf_counter()
            embedder.model.encode(texts, batch_size=32, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)
            raw_times.append(time.perf_counter() - started)
    assert report.embedded == len(texts)
    tokens = sum(n for _, n in rows)
    out = []
    for store in stores:
        started = time.perf_counter()
        again = run_ingest(store.settings(corpus), embedder, progress=False)
        rerun_s = time.perf_counter() - started
        assert again.embedded == 0 and not (again.added or again.changed or again.deleted)
        pipeline_s = min(times[store.name])
        row = {"corpus": name, "store": store.name, "embedder": embedder.model_id,
               "files": len(report.added), "chunks": len(rows), "embedded": report.embedded,
               "tokens": tokens, "repeat": repeat, "pipeline_s": round(pipeline_s, 2),
               "pipeline_chunks_per_s": round(report.embedded / pipeline_s, 1),
               "pipeline_tokens_per_s": round(tokens / pipeline_s),
               "unchanged_rerun_s": round(rerun_s, 3)}
        if raw_times:
            raw_s = min(raw_times)
            row.update({"raw_encode_s": round(raw_s, 2),
                        "raw_chunks_per_s": round(len(texts) / raw_s, 1),
                        "ratio_pipeline_over_raw": round(raw_s / pipeline_s, 3)})
        out.append(row)
    return out


COLUMNS = ["corpus", "store", "embedder", "files", "chunks", "tokens", "pipeline_s",
           "raw_encode_s", "pipeline_chunks_per_s", "pipeline_tokens_per_s", "raw_chunks_per_s",
           "ratio_pipeline_over_raw", "unchanged_rerun_s"]


def ratios(results: list[dict]) -> list[list]:
    """PostgreSQL's chunks/s against SQLite's, per corpus and embedder."""
    by = {(r["corpus"], r["embedder"], r["store"]): r for r in results}
    out = []
    for (corpus, model, store), r in by.items():
        other = by.get((corpus, model, "sqlite"))
        if store == "postgres" and other:
            out.append([corpus, model, other["pipeline_chunks_per_s"],
                        r["pipeline_chunks_per_s"],
                        round(r["pipeline_chunks_per_s"] / other["pipeline_chunks_per_s"], 3)])
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=220, help="generated documents (~10 chunks each)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    parser.add_argument("--store", help="sqlite,postgres (default: both when PostgreSQL can be had)")
    parser.add_argument("--embedder", default="minilm,hashing",
                        help="minilm (the real model), hashing (the store's own cost shows)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    names = parse_stores(args.store)
    embedders = [_embedder(e) for e in args.embedder.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, postgres_url(names) as url:
        work = Path(tmp)
        generate_corpus(work / "generated", ROOT / "corpus", args.docs)
        for embedder in embedders:
            stores = [BenchStore(n, work / f"index-{n}", url, "bench_ingest") for n in names]
            results += measure("starter", ROOT / "corpus", embedder, stores, args.repeat)
            results += measure("generated", work / "generated", embedder, stores, args.repeat)
        assert args.docs < 220 or results[-1]["chunks"] >= 2000, \
            "the generated corpus must give >= 2,000 chunks"
        shutil.rmtree(work / "generated")
    print(f"Ingest benchmark ({platform.node()}, {platform.processor() or platform.machine()}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end)")
    print_table(COLUMNS, [[r.get(c, "-") for c in COLUMNS] for r in results])
    if any(r["store"] == "postgres" for r in results):
        print_table(["corpus", "embedder", "SQLite chunks/s", "PostgreSQL chunks/s",
                     "PostgreSQL / SQLite"], ratios(results))
    write_json(args.json, results)
    return results


def _embedder(name: str) -> Embedder:
    if name == "hashing":
        return HashingEmbedder()
    embedder = SentenceTransformerEmbedder()
    embedder.warm_up()
    embedder.embed([f"warm-up passage {i} " * (i * 4 + 1) for i in range(64)])  # kernels, allocs
    return embedder


if __name__ == "__main__":
    main()
