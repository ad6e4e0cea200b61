"""A generated index of N chunks, written through the writer seam (`ingest.store.open_store`), so
the same documents and vectors land in either store.

Realistic chunk texts made of the starter corpus' sentences, with vectors from a fast stand-in:
each chunk's vector is the normalized mean of its sentences' real MiniLM vectors (each distinct
sentence is embedded once), so questions find relevant chunks as they would in a real index.
Its meta records all-MiniLM-L6-v2, so the service opens it and embeds each question with the
real model. As an ingest run does: vectors checkpointed in batches (`put_vectors`), then ONE
commit of every document (`commit_run`; on PostgreSQL that builds the HNSW index), then publish
(on SQLite: the FAISS file).
"""
from __future__ import annotations

import random
import re
import time
from typing import Iterator

import numpy as np

from ingest.chunking import Chunk
from ingest.embedders import build_embedder
from ingest.settings import IngestSettings
from ingest.store import open_store
from ingest.store.records import IndexParams, NewDocument, vector_key
from tests.helpers import ROOT

BATCH_DOCS = 1000  # documents (10,000 chunks) per vector checkpoint


def model_id() -> str:
    """The identity the benchmark's services embed questions with (RAG_EMBED_BACKEND), which
    the generated index must record for them to open it (nothing is loaded to know it)."""
    return build_embedder(IngestSettings()).model_id


def corpus_sentences() -> list[str]:
    text = " ".join(p.read_text(encoding="utf-8-sig", errors="replace")
                    for p in sorted((ROOT / "corpus").rglob("*")) if p.suffix in (".md", ".txt"))
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text)
            if 40 <= len(s.strip()) <= 300 and "#" not in s and "|" not in s]


def sentence_vectors(sentences: list[str]) -> np.ndarray:
    return build_embedder(IngestSettings()).embed(sentences)


def generated(sentences: list[str], sentence_vecs: np.ndarray, chunks: int, per_doc: int = 10,
              seed: int = 1) -> Iterator[tuple[list[NewDocument], np.ndarray]]:
    """Batches of (documents, their chunks' vectors in order), the same for a seed."""
    rng = random.Random(seed)
    docs, picks, model = [], [], model_id()
    for d in range(chunks // per_doc):
        chosen = [[rng.randrange(len(sentences)) for _ in range(rng.randint(3, 7))]
                  for _ in range(per_doc)]
        picks += chosen
        texts = [" ".join(sentences[j] for j in c) + f" (record {d}-{i})"
                 for i, c in enumerate(chosen)]
        text = "\n\n".join(texts)
        pos, doc_chunks = 0, []
        for i, t in enumerate(texts):
            doc_chunks.append(Chunk(i, pos, pos + len(t), t, (f"Generated {d}",), None, 150))
            pos += len(t) + 2
        keys = [vector_key(model, c.text) for c in doc_chunks]
        docs.append(NewDocument(f"generated/doc-{d:06d}.md", f"{d:064x}", len(text), "markdown",
                                text, doc_chunks, keys))
        if len(docs) == BATCH_DOCS:
            yield docs, _mean_vectors(picks, sentence_vecs)
            docs, picks = [], []
    if docs:
        yield docs, _mean_vectors(picks, sentence_vecs)


def _mean_vectors(picks: list[list[int]], sentence_vecs: np.ndarray) -> np.ndarray:
    vecs = np.vstack([sentence_vecs[c].mean(axis=0) for c in picks]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs


def build_big_index(settings: IngestSettings, chunks: int, sentences: list[str],
                    sentence_vecs: np.ndarray) -> dict[str, float]:
    """Write the generated index into the store the settings name; seconds per step."""
    times = {"vectors_s": 0.0}
    all_docs: list[NewDocument] = []
    started = time.perf_counter()
    with open_store(settings, IndexParams(model_id(), 200, 32)) as store:
        for docs, vecs in generated(sentences, sentence_vecs, chunks):
            t0 = time.perf_counter()
            store.put_vectors([k for d in docs for k in d.vec_keys], vecs)
            times["vectors_s"] += time.perf_counter() - t0
            all_docs += docs
        t0 = time.perf_counter()
        _, commit = store.commit_run(all_docs, [], [], model_dim=lambda: 384)
        times["commit_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.publish(commit)
        times["publish_s"] = time.perf_counter() - t0
    times["total_s"] = time.perf_counter() - started
    return {k: round(v, 1) for k, v in times.items()}
