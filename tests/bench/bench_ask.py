"""`make bench-ask`: /ask latency over HTTP with the extractive generator, at 1 and 8 concurrent
clients, on the starter corpus and on a generated 100,000-chunk index.

The big index is built directly through the Store (so it takes minutes, not hours): realistic
chunk texts made of the starter corpus' sentences, with vectors from a fast stand-in: each
chunk's vector is the normalized mean of its sentences' real MiniLM vectors (each distinct
sentence is embedded once), so questions find relevant chunks as they would in a real index.
Its meta records all-MiniLM-L6-v2, so the service opens it and embeds each question with the
real model. On the starter corpus it also times the labelled follow-ups (app/eval/data):
with their history, as their rewritten form without history, and alone. Reports p50/p95/p99 of the end-to-end time seen by the
client, and of the server's embed, retrieve and generate times, and of everything else
(HTTP, JSON, citation checks, prompt budget) = end-to-end minus those three; and the part of
that spent inside the server's pipeline (its total minus the three), the rest being HTTP on
both sides, uvicorn and the client itself, which shares the machine's two cores.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from ingest.chunking import Chunk
from ingest.embedders import SentenceTransformerEmbedder
from ingest.settings import DEFAULT_MODEL, IngestSettings
from ingest.store.records import IndexParams, NewDocument, vector_key
from ingest.store.sqlite.store import SqliteStore
from ingest.sync import run_ingest
from app.conversation import retrieval_query
from app.eval.conversations import CONVERSATIONS, history_of
from app.eval.starter import load_questions
from tests.service_process import running_service
from tests.helpers import ROOT

QUESTIONS = ROOT / "tests" / "data" / "abstention_questions.jsonl"


def corpus_sentences() -> list[str]:
    text = " ".join(p.read_text(encoding="utf-8-sig", errors="replace")
                    for p in sorted((ROOT / "corpus").rglob("*")) if p.suffix in (".md", ".txt"))
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text)
            if 40 <= len(s.strip()) <= 300 and "#" not in s and "|" not in s]


def build_big_index(index_dir: Path, chunks: int, per_doc: int = 10, seed: int = 1) -> None:
    rng = random.Random(seed)
    sentences = corpus_sentences()
    embedder = SentenceTransformerEmbedder()
    sentence_vecs = embedder.embed(sentences)
    store = SqliteStore(index_dir, IndexParams(DEFAULT_MODEL, 200, 32))
    docs, picks = [], []
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
        keys = [vector_key(DEFAULT_MODEL, c.text) for c in doc_chunks]
        docs.append(NewDocument(f"generated/doc-{d:05d}.md", f"{d:064x}", len(text), "markdown",
                                text, doc_chunks, keys))
        if len(docs) == 1000:
            _flush(store, docs, picks, sentence_vecs)
            docs, picks = [], []
    if docs:
        _flush(store, docs, picks, sentence_vecs)
    store.publish(store.meta["commit"])
    store.close()


def _flush(store: SqliteStore, docs: list[NewDocument], picks: list[list[int]],
           sentence_vecs: np.ndarray) -> None:
    keys = [k for d in docs for k in d.vec_keys]
    vecs = np.vstack([sentence_vecs[c].mean(axis=0) for c in picks]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store.put_vectors(keys, vecs)
    store.commit_run(docs, [], [], model_dim=lambda: 384)


def percentiles(values: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(qs[49], 1), "p95": round(qs[94], 1), "p99": round(qs[98], 1)}


def load(url: str, questions: list[str] | list[dict], clients: int, requests: int) -> dict:
    """`requests` questions (texts, or /ask bodies) in total, spread over `clients` threads,
    each with its own connection. Returns percentiles per component (ms)."""
    rows: list[dict] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        with httpx.Client(timeout=60) as client:
            for i in range(k, requests, clients):
                q = questions[i % len(questions)]
                t0 = time.perf_counter()
                r = client.post(f"{url}/ask", json=q if isinstance(q, dict) else {"question": q})
                total = (time.perf_counter() - t0) * 1000
                r.raise_for_status()
                t = r.json()["timings_ms"]
                rest = total - t["embed"] - t["retrieve"] - t["generate"]
                server_rest = t["total"] - t["embed"] - t["retrieve"] - t["generate"]
                with lock:
                    rows.append({"total": total, "embed": t["embed"], "retrieve": t["retrieve"],
                                 "generate": t["generate"], "rest": rest,
                                 "server_rest": server_rest})

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - started
    out = {key: percentiles([r[key] for r in rows]) for key in rows[0]}
    out["qps"] = round(len(rows) / wall, 1)
    return out


def follow_ups() -> dict[str, list[dict]]:
    """The labelled follow-ups three ways: with their history (rewritten: what a chat sends),
    their rewritten form asked as a question without history (what the rewrite searched,
    without the rewrite), and the bare follow-up alone."""
    rows = [r for r in load_questions(CONVERSATIONS) if r["kind"] == "follow-up"]
    queries = [retrieval_query(r["q"], history_of(r)) for r in rows]
    return {"follow-up with history": [{"question": r["q"], "history": r["history"]}
                                       for r in rows],
            "its rewrite, no history": [{"question": q} for q in queries],
            "follow-up alone": [{"question": r["q"]} for r in rows]}


def run(name: str, index: Path, corpus: Path, questions: list[str], requests: int,
        conversations: bool = False) -> list:
    results = []
    # No watcher: the 100k index has no corpus folder behind it (a catch-up ingest over the
    # empty folder would delete it), and a watcher would only add noise to the timings.
    with running_service(index, corpus, timeout=600, RAG_WATCH="false") as url:
        load(url, questions, 1, 20)  # warm-up: models, caches, FAISS pages
        for clients in (1, 8):
            r = load(url, questions, clients, requests)
            results.append({"index": name, "clients": clients, **r})
            print(f"  {name}, {clients} client(s): done", flush=True)
        # interleaved rounds, so a noisy minute does not land on one of them only
        if conversations:
            bodies, rounds = follow_ups(), 4
            for _ in range(rounds):
                for kind, asked in bodies.items():
                    r = load(url, asked, 1, requests // rounds)
                    results.append({"index": f"{name}: {kind}", "clients": 1, **r})
            results = _merged(results, rounds)
    return results


def _merged(results: list[dict], rounds: int) -> list[dict]:
    """One row per follow-up kind: the median over the rounds of each percentile."""
    plain = [r for r in results if ": " not in r["index"]]
    by_kind: dict[str, list[dict]] = {}
    for r in results:
        if ": " in r["index"]:
            by_kind.setdefault(r["index"], []).append(r)
    for kind, rs in by_kind.items():
        row = {"index": kind, "clients": 1,
               "qps": round(statistics.median(r["qps"] for r in rs), 1)}
        for key in ("total", "embed", "retrieve", "generate", "rest", "server_rest"):
            row[key] = {p: round(statistics.median(r[key][p] for r in rs), 1)
                        for p in ("p50", "p95", "p99")}
        plain.append(row)
    return plain


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunks", type=int, default=100_000, help="0: the starter corpus only")
    p.add_argument("--requests", type=int, default=200, help="per load level")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    # Answerable questions only: an abstention skips generation and the citation check, and
    # would flatter the percentiles.
    rows = [json.loads(x) for x in QUESTIONS.read_text().splitlines() if x.strip()]
    questions = [r["q"] for r in rows if r["answerable"]]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ask-") as tmp:
        tmp = Path(tmp)
        starter = IngestSettings(corpus_dir=ROOT / "corpus", index_dir=tmp / "starter")
        run_ingest(starter, progress=False)
        results += run("starter", starter.index_dir, starter.corpus_dir, questions,
                       args.requests, conversations=True)
        if args.chunks == 0:
            return _print(results, args.json)
        t0 = time.perf_counter()
        build_big_index(tmp / "big", args.chunks)
        print(f"built the {args.chunks:,}-chunk index in {time.perf_counter() - t0:.0f} s")
        (tmp / "empty").mkdir()
        results += run(f"{args.chunks // 1000}k", tmp / "big", tmp / "empty", questions,
                       args.requests)
    _print(results, args.json)


def _print(results: list[dict], json_path: Path | None) -> None:
    print("\n| index | clients | qps | end-to-end p50/p95/p99 ms | embed p50/p95/p99 | "
          "retrieve p50/p95/p99 | generate p50/p95/p99 | rest p50/p95/p99 | "
          "of which in the server |")
    print("|---|---|---|---|---|---|---|---|---|")
    fmt = lambda d: f"{d['p50']} / {d['p95']} / {d['p99']}"  # noqa: E731
    for r in results:
        print(f"| {r['index']} | {r['clients']} | {r['qps']} | {fmt(r['total'])} | "
              f"{fmt(r['embed'])} | {fmt(r['retrieve'])} | {fmt(r['generate'])} | "
              f"{fmt(r['rest'])} | {fmt(r['server_rest'])} |")
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
