"""`python -m tests.bench.bench_remote_embedder`: the remote embedder (RAG_EMBEDDER=openai) against
llama.cpp's real server serving the bundled all-MiniLM-L6-v2, beside the local model.

- Agreement: cosine of each remote vector with the local one, on the texts of
  tests/embed_server.py's `sample_texts` (50 starter chunks and 4 short texts): min and mean.
- Throughput: a full ingest of the starter corpus into an empty index, chunks/s, with each
  embedder (best of `--repeat`). Here both the server and the client share this machine's cores:
  the figure says what the HTTP path costs, not what a GPU server gives.
Prints a markdown table; `--json PATH` also writes the figures.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from ingest.embedders import OpenAIEmbedder, RemoteOptions, SentenceTransformerEmbedder
from ingest.settings import DEFAULT_MODEL, IngestSettings
from ingest.sync import run_ingest
from tests.embed_server import ALIAS, N_CTX, minilm_gguf, sample_texts
from tests.helpers import ROOT
from tests.llm_server import run_llama_server


def ingest_rate(embedder, work: Path, repeat: int) -> tuple[float, int]:
    """(best chunks/s, chunks) of a full ingest of the starter corpus."""
    best, chunks = 0.0, 0
    for attempt in range(repeat):
        settings = IngestSettings(corpus_dir=ROOT / "corpus", index_dir=work / f"i{attempt}")
        started = time.perf_counter()
        report = run_ingest(settings, embedder, progress=False)
        best = max(best, report.embedded / (time.perf_counter() - started))
        chunks = report.embedded
    return best, chunks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="ingests of each; the best counts")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    local = SentenceTransformerEmbedder()
    local.warm_up()
    with run_llama_server(minilm_gguf(), n_ctx=N_CTX, alias=ALIAS,
                          extra=("--embedding", "true")) as server, \
            tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        remote = OpenAIEmbedder(RemoteOptions(server.base_url, server.model,
                                              tokenizer=DEFAULT_MODEL))
        texts = sample_texts(local.count_tokens)
        cosines = np.sum(remote.embed(texts) * local.embed(texts), axis=1)
        rows = {}
        for name, embedder in (("local (sentence-transformers)", local),
                               ("remote (llama.cpp server, f32 GGUF)", remote)):
            rate, chunks = ingest_rate(embedder, Path(tmp) / name[:5], args.repeat)
            rows[name] = {"chunks": chunks, "chunks_per_s": round(rate, 1)}
    figures = {"texts": len(texts), "cosine_min": round(float(cosines.min()), 6),
               "cosine_mean": round(float(cosines.mean()), 6), "ingest": rows}
    print(f"Remote embedder ({platform.node()}, {platform.processor() or platform.machine()})\n")
    print(f"Agreement on {len(texts)} texts: cosine min {figures['cosine_min']}, "
          f"mean {figures['cosine_mean']}\n")
    print("| embedder | chunks | ingest chunks/s |\n|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['chunks']} | {r['chunks_per_s']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
