"""`make bench-ingest`: is the ingest pipeline bound by the embedder, not by its own overhead?

For the starter corpus, a generated corpus of >= 2,000 chunks and a generated corpus of heavy
PDFs (many pages, every word placed on its own, as typesetters write them: slow to parse), it
measures, on each store (`--store sqlite,postgres`; both by default when a PostgreSQL can be
had: RAG_DATABASE_URL, or an embedded one started for the run), with the real all-MiniLM-L6-v2
on each backend of `--backends` (torch, onnx, onnx-int8: built through the settings,
RAG_EMBED_BACKEND; loaded once, outside every timing) and with the hashing embedder (no model:
the store's own cost shows):
- a full ingest into an empty index: chunks/s and tokens/s (tokens = the model's, per chunk);
- the same ingest with loading and chunking not overlapped with the embedding (on the
  caller's thread, between checkpoints; on the first store), and what loading and chunking
  alone take: the overlap's gain, measured;
- the raw `model.encode` throughput on exactly the same chunk texts, and pipeline/raw
  (= raw encode time / pipeline time; 1.0 would mean the pipeline costs nothing but encoding;
  the target is >= 0.85);
- a re-run with nothing changed;
- PostgreSQL's chunks/s against SQLite's (the stores' runs alternate, so noise hits both).
Prints markdown tables; `--json PATH` also writes the figures.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from ingest import sync
from ingest.embedders import Embedder, HashingEmbedder, build_embedder
from ingest.errors import LoadError
from ingest.scan import scan_corpus
from ingest.settings import IngestSettings
from ingest.store.sqlite.snapshot import SqliteSnapshot
from ingest.sync import run_ingest
from tests.bench.report import print_table, write_json
from tests.bench.stores import BenchStore, parse_stores, postgres_url
from tests.helpers import ROOT

BACKENDS = ("torch", "onnx", "onnx-int8")


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


def generate_pdfs(target: Path, source: Path, n_docs: int, pages: int, seed: int = 11) -> None:
    """Heavy PDFs: `pages` pages of 9-point text each, every word placed on its own (as LaTeX
    and most typesetters write them, so the parser has a text operation per word), from the
    starter corpus' sentences. Deterministic: same seed, same bytes (fixed creation date)."""
    from datetime import datetime, timezone

    from fpdf import FPDF

    words = []
    for path in sorted(source.rglob("*")):
        if path.suffix in (".md", ".txt"):
            text = path.read_text(encoding="utf-8-sig", errors="replace")
            words += [w for w in re.findall(r"[A-Za-z0-9.,;:()'-]+", text) if len(w) < 20]
    rng = random.Random(seed)
    target.mkdir(parents=True)
    for i in range(n_docs):
        pdf = FPDF()
        pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=timezone.utc))
        pdf.set_font("Helvetica", size=9)
        pdf.set_auto_page_break(False)
        for _ in range(pages):
            pdf.add_page()
            y = 15.0
            while y < 280:
                x = 15.0
                while True:
                    word = rng.choice(words)
                    width = pdf.get_string_width(word + " ")
                    if x + width > 195:
                        break
                    pdf.text(x, y, word)
                    x += width
                y += 4.2
        pdf.output(str(target / f"report-{i:03d}.pdf"))


def ingest_once(store: BenchStore, corpus: Path, embedder: Embedder) -> tuple[float, object]:
    settings = store.fresh().settings(corpus)
    started = time.perf_counter()
    report = run_ingest(settings, embedder, progress=False)
    return time.perf_counter() - started, report


@contextlib.contextmanager
def no_overlap() -> Iterator[None]:
    """Ingests in the block load and chunk on the caller's thread, each file when the
    embedding asks for the next one (no reading ahead: the work done one thing at a time)."""
    ahead = sync.PREFETCH_CHECKPOINTS
    sync.PREFETCH_CHECKPOINTS = 0
    try:
        yield
    finally:
        sync.PREFETCH_CHECKPOINTS = ahead


def read_seconds(corpus: Path, settings: IngestSettings, embedder: Embedder) -> float:
    """Loading and chunking alone (what the reading thread does), on one thread."""
    chunker = functools.cache(lambda: sync.chunker_for(settings, embedder))
    chunker()  # made outside the timing (it loads nothing: the model is warm)
    started = time.perf_counter()
    for f in scan_corpus(corpus):
        with contextlib.suppress(LoadError):
            sync._load_and_chunk(f, settings, chunker, embedder.model_id, {}, False)
    return time.perf_counter() - started


def raw_encoder(embedder: Embedder):
    """The model's own encode on a list of texts (None for the hashing embedder): a
    sentence-transformers model's `encode`, in the embedder's batches, else the embedder's
    `embed`."""
    if isinstance(embedder, HashingEmbedder):
        return None
    model = getattr(embedder, "model", None)
    if model is not None and hasattr(model, "encode"):
        size = embedder.batch_size
        return lambda texts: model.encode(texts, batch_size=size, normalize_embeddings=True,
                                          convert_to_numpy=True, show_progress_bar=False)
    return embedder.embed


def measure(name: str, corpus: Path, label: str, embedder: Embedder,
            stores: list[BenchStore], repeat: int, sequential: bool) -> list[dict]:
    """Pipeline into each store, (on the first store) the same without the overlap, and (a
    real model) raw encode, interleaved `repeat` times; the best time of each counts (the
    usual way to read through a noisy machine)."""
    times: dict[str, list[float]] = {s.name: [] for s in stores}
    raw_times, sequential_times = [], []
    raw = raw_encoder(embedder)
    for _ in range(repeat):
        for store in stores:
            seconds, report = ingest_once(store, corpus, embedder)
            times[store.name].append(seconds)
        rows = chunk_rows(stores[-1])
        texts = list(dict.fromkeys(t for t, _ in rows))  # what the pipeline embedded
        if sequential:
            with no_overlap():
                sequential_times.append(ingest_once(stores[0], corpus, embedder)[0])
        if raw is not None:
            started = time.perf_counter()
            raw(texts)
            raw_times.append(time.perf_counter() - started)
    assert report.embedded == len(texts)
    tokens = sum(n for _, n in rows)
    read_s = read_seconds(corpus, stores[0].settings(corpus), embedder)
    out = []
    for store in stores:
        started = time.perf_counter()
        again = run_ingest(store.settings(corpus), embedder, progress=False)
        rerun_s = time.perf_counter() - started
        assert again.embedded == 0 and not (again.added or again.changed or again.deleted)
        pipeline_s = min(times[store.name])
        row = {"corpus": name, "store": store.name, "embedder": label,
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
        if sequential_times and store is stores[0]:
            sequential_s = min(sequential_times)
            row.update({"load_chunk_s": round(read_s, 2),
                        "sequential_s": round(sequential_s, 2),
                        "sequential_chunks_per_s": round(report.embedded / sequential_s, 1),
                        "overlap_gain": round(sequential_s / pipeline_s, 3)})
        out.append(row)
    return out


COLUMNS = ["corpus", "store", "embedder", "files", "chunks", "tokens", "pipeline_s",
           "raw_encode_s", "pipeline_chunks_per_s", "pipeline_tokens_per_s", "raw_chunks_per_s",
           "ratio_pipeline_over_raw", "unchanged_rerun_s"]
OVERLAP_COLUMNS = ["corpus", "store", "embedder", "chunks", "load_chunk_s", "sequential_s",
                   "pipeline_s", "sequential_chunks_per_s", "pipeline_chunks_per_s",
                   "overlap_gain", "ratio_pipeline_over_raw", "ratio >= 0.85"]


def overlap_rows(results: list[dict]) -> list[list]:
    """With and without the overlap, and the pipeline/raw target, where both were measured."""
    out = []
    for r in results:
        if "sequential_s" in r:
            ratio = r.get("ratio_pipeline_over_raw")
            met = "-" if ratio is None else ("yes" if ratio >= 0.85 else "no")
            out.append([r.get(c, met if c == "ratio >= 0.85" else "-") for c in OVERLAP_COLUMNS])
    return out


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
    parser.add_argument("--pdfs", type=int, default=12, help="generated heavy PDFs")
    parser.add_argument("--pdf-pages", type=int, default=15, help="pages of each heavy PDF")
    parser.add_argument("--corpus", default="starter,generated,pdf",
                        help="which corpora: starter, generated, pdf")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    parser.add_argument("--store", help="sqlite,postgres (default: both when PostgreSQL can be had)")
    parser.add_argument("--embedder", default="minilm,hashing",
                        help="minilm (the real model, on each of --backends), hashing (the "
                             "store's own cost shows)")
    parser.add_argument("--backends", default="torch,onnx-int8",
                        help=f"the real model's backends (RAG_EMBED_BACKEND): {', '.join(BACKENDS)}")
    parser.add_argument("--no-sequential", action="store_true",
                        help="skip the runs without the overlap")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    names = parse_stores(args.store)
    corpora = _choices(args.corpus, ("starter", "generated", "pdf"), "--corpus")
    embedders = _embedders(_choices(args.embedder, ("minilm", "hashing"), "--embedder"),
                           _choices(args.backends, BACKENDS, "--backends"))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, postgres_url(names) as url:
        work = Path(tmp)
        paths = {"starter": ROOT / "corpus", "generated": work / "generated", "pdf": work / "pdf"}
        if "generated" in corpora:
            generate_corpus(paths["generated"], ROOT / "corpus", args.docs)
        if "pdf" in corpora:
            generate_pdfs(paths["pdf"], ROOT / "corpus", args.pdfs, args.pdf_pages)
        for label, embedder in embedders:
            stores = [BenchStore(n, work / f"index-{n}", url, "bench_ingest") for n in names]
            for corpus in corpora:
                results += measure(corpus, paths[corpus], label, embedder, stores, args.repeat,
                                   not args.no_sequential)
        generated = [r for r in results if r["corpus"] == "generated"]
        assert args.docs < 220 or not generated or generated[-1]["chunks"] >= 2000, \
            "the generated corpus must give >= 2,000 chunks"
        for path in (paths["generated"], paths["pdf"]):
            shutil.rmtree(path, ignore_errors=True)
    print(f"Ingest benchmark ({platform.node()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end)")
    print_table(COLUMNS, [[r.get(c, "-") for c in COLUMNS] for r in results])
    if any("sequential_s" in r for r in results):
        print("\nWith and without the overlap (load_chunk_s: loading and chunking alone, on one "
              "thread; overlap_gain = sequential_s / pipeline_s):")
        print_table(OVERLAP_COLUMNS, overlap_rows(results))
    if any(r["store"] == "postgres" for r in results):
        print_table(["corpus", "embedder", "SQLite chunks/s", "PostgreSQL chunks/s",
                     "PostgreSQL / SQLite"], ratios(results))
    write_json(args.json, results)
    return results


def _choices(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in allowed]
    if unknown or not names:
        raise SystemExit(f"{flag}: expected a list of {', '.join(allowed)}, got {text!r}")
    return names


def _embedders(names: list[str], backends: list[str]) -> list[tuple[str, Embedder]]:
    """(label, warm embedder) of each one asked for."""
    out: list[tuple[str, Embedder]] = []
    for name in names:
        if name == "hashing":
            out.append(("hashing-v1", HashingEmbedder()))
            continue
        for backend in backends:
            out.append((f"minilm {backend}", _real_model(backend)))
    return out


def _real_model(backend: str) -> Embedder:
    """all-MiniLM-L6-v2 on `backend`, built through the settings as `make ingest` builds it,
    loaded and warmed (kernels, allocations) outside every timing."""
    settings = IngestSettings(embedder="sentence-transformers", embed_backend=backend)
    embedder = build_embedder(settings)
    embedder.embed([f"warm-up passage {i} " * (i * 4 + 1) for i in range(64)])
    return embedder


if __name__ == "__main__":
    main()
