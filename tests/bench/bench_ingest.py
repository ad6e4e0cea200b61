"""`make bench-ingest`: is the ingest pipeline bound by the embedder, not by its own overhead?

For the starter corpus and for a generated corpus of >= 2,000 chunks it measures, with the real
all-MiniLM-L6-v2 (loaded once, outside every timing):
- a full ingest into an empty index: chunks/s and tokens/s (tokens = the model's, per chunk);
- the raw `model.encode` throughput on exactly the same chunk texts, and pipeline/raw
  (= raw encode time / pipeline time; 1.0 would mean the pipeline costs nothing but encoding);
- a re-run with nothing changed.
Prints a markdown table; `--json PATH` also writes the figures.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

from ingest.embedders import SentenceTransformerEmbedder
from ingest.store.sqlite.snapshot import SqliteSnapshot
from ingest.settings import IngestSettings
from ingest.sync import run_ingest
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


def measure(name: str, corpus: Path, embedder: SentenceTransformerEmbedder, work: Path,
            repeat: int) -> dict:
    """Pipeline and raw encode, interleaved `repeat` times; the best time of each counts
    (the usual way to read through a noisy machine)."""
    pipeline_times, raw_times = [], []
    for attempt in range(repeat):
        settings = IngestSettings(corpus_dir=corpus, index_dir=work / f"index-{name}-{attempt}")
        started = time.perf_counter()
        report = run_ingest(settings, embedder, progress=False)
        pipeline_times.append(time.perf_counter() - started)
        with SqliteSnapshot.open(settings.index_dir) as snap:
            rows = snap._query("SELECT text, tokens FROM chunks")
        texts = list(dict.fromkeys(t for t, _ in rows))  # what the pipeline embedded
        started = time.perf_counter()
        embedder.model.encode(texts, batch_size=32, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False)
        raw_times.append(time.perf_counter() - started)
    assert report.embedded == len(texts)
    started = time.perf_counter()
    again = run_ingest(settings, embedder, progress=False)
    rerun_s = time.perf_counter() - started
    assert again.embedded == 0 and not (again.added or again.changed or again.deleted)
    pipeline_s, raw_s = min(pipeline_times), min(raw_times)
    tokens = sum(n for _, n in rows)
    return {
        "corpus": name, "files": len(report.added), "chunks": len(rows),
        "embedded": report.embedded, "tokens": tokens, "repeat": repeat,
        "pipeline_s": round(pipeline_s, 2), "raw_encode_s": round(raw_s, 2),
        "pipeline_chunks_per_s": round(report.embedded / pipeline_s, 1),
        "raw_chunks_per_s": round(len(texts) / raw_s, 1),
        "pipeline_tokens_per_s": round(tokens / pipeline_s),
        "ratio_pipeline_over_raw": round(raw_s / pipeline_s, 3),
        "unchanged_rerun_s": round(rerun_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=220, help="generated documents (~10 chunks each)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    embedder = SentenceTransformerEmbedder()
    embedder.warm_up()
    embedder.embed([f"warm-up passage {i} " * (i * 4 + 1) for i in range(64)])  # kernels, allocs
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        results.append(measure("starter", ROOT / "corpus", embedder, work, args.repeat))
        generate_corpus(work / "generated", ROOT / "corpus", args.docs)
        results.append(measure("generated", work / "generated", embedder, work, args.repeat))
        assert results[-1]["chunks"] >= 2000, "the generated corpus must give >= 2,000 chunks"
        shutil.rmtree(work / "generated")
    cols = ["corpus", "files", "chunks", "tokens", "pipeline_s", "raw_encode_s",
            "pipeline_chunks_per_s",
            "pipeline_tokens_per_s", "raw_chunks_per_s", "ratio_pipeline_over_raw",
            "unchanged_rerun_s"]
    print(f"Ingest benchmark ({platform.node()}, {platform.processor() or platform.machine()})\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
