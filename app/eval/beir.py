"""Retrieval quality on a BEIR-format dataset: `python -m app.eval beir PATH [--json]`.

The dataset's documents go through the same pipeline as a corpus: each is written as a text
file (title, blank line, text) into a folder of its own and ingested incrementally into its own
index (under RAG_INDEX_DIR/eval/, reused by later runs), so a document longer than the model's
window is chunked. Each query is then run as the service runs it, chunk rankings from BM25
(FTS5) and from FAISS, fused by reciprocal rank fusion for hybrid, and a document's score is its
best chunk's (its first place in the chunk ranking). Reported: nDCG@10, Recall@10, Recall@100,
MRR@10 and queries per second (one query at a time, embedding included).
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from app.eval.metrics import ndcg_at, summarize
from app.retrieval import Mode, Retriever, fuse
from app.settings import Settings
from ingest.embedders import Embedder, build_embedder
from ingest.store import Snapshot, open_reader
from ingest.sync import run_ingest

DEPTH = 300  # chunks per retriever: enough for Recall@100 at the document level
MODES = (Mode.LEXICAL, Mode.DENSE, Mode.HYBRID)


class EvalError(Exception):
    """The dataset cannot be used; the message says why."""


@dataclass
class BeirDataset:
    name: str
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]  # query id -> text, only judged queries of the split
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> relevance
    split: str


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise EvalError(f"{path} is missing (a BEIR dataset has corpus.jsonl, queries.jsonl "
                        "and qrels/<split>.tsv)")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise EvalError(f"{path}:{n}: not JSON ({exc.msg})") from exc
    return rows


def load_beir(path: Path, split: str = "test") -> BeirDataset:
    path = Path(path)
    if not path.is_dir():
        raise EvalError(f"{path} is not a folder")
    corpus = {str(r["_id"]): (r.get("title") or "", r.get("text") or "")
              for r in _jsonl(path / "corpus.jsonl")}
    all_queries = {str(r["_id"]): r["text"] for r in _jsonl(path / "queries.jsonl")}
    qrels_path = path / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise EvalError(f"{qrels_path} is missing: no judgments for the {split!r} split")
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(qrels_path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split("\t")
        if n == 1 and not parts[-1].strip().lstrip("-").isdigit():
            continue  # the header
        if len(parts) < 3:
            raise EvalError(f"{qrels_path}:{n}: expected query-id, corpus-id, score")
        qid, did, score = parts[0].strip(), parts[1].strip(), int(parts[2])
        if qid in all_queries and did in corpus:
            qrels.setdefault(qid, {})[did] = score
    queries = {q: all_queries[q] for q in qrels}
    if not queries:
        raise EvalError(f"no judged query of {qrels_path} is in queries.jsonl")
    return BeirDataset(path.name, corpus, queries, qrels, split)


def file_name(doc_id: str) -> str:
    """A safe, unique file name for a document id."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,100}", doc_id):
        return f"{doc_id}.txt"
    return f"id-{hashlib.sha1(doc_id.encode()).hexdigest()}.txt"


def write_documents(corpus: dict[str, tuple[str, str]], folder: Path) -> dict[str, str]:
    """Each document as a text file (title, blank line, text) in `folder`, rewritten only when
    it differs, and files of documents no longer there removed. Returns file name -> doc id."""
    folder.mkdir(parents=True, exist_ok=True)
    doc_of: dict[str, str] = {}
    for did, (title, text) in corpus.items():
        name = file_name(did)
        doc_of[name] = did
        body = (f"{title}\n\n{text}\n" if title else f"{text}\n").encode()
        target = folder / name
        if not target.exists() or target.read_bytes() != body:
            target.write_bytes(body)
    for stale in folder.iterdir():
        if stale.name not in doc_of:
            stale.unlink()
    return doc_of


def build_index(ds: BeirDataset, settings: Settings, embedder: Embedder,
                progress: bool | None = None) -> tuple[Settings, dict[str, str]]:
    """Write the documents as files and ingest them (incrementally: a second run costs a
    scan). Returns the settings of that index and the map file path -> doc id."""
    work = settings.index_dir / "eval" / f"{ds.name}-{settings.chunk_tokens}-{settings.chunk_overlap}"
    corpus_dir = work / "corpus"
    doc_of = write_documents(ds.corpus, corpus_dir)
    # its own index: a folder beside the corpus, or on PostgreSQL a schema of its own
    schema = re.sub(r"[^a-z0-9_]", "_", f"{settings.database_schema}_eval_{work.name}".lower())
    eval_settings = settings.model_copy(update={"corpus_dir": corpus_dir,
                                                "index_dir": work / "index",
                                                "database_schema": schema[:63]})
    report = run_ingest(eval_settings, embedder, progress=progress)
    if report.failed:
        print(f"warning: {len(report.failed)} documents were refused, e.g. "
              f"{report.failed[0][0]}: {report.failed[0][1]}", file=sys.stderr)
    return eval_settings, doc_of


class DocRanker:
    """Document rankings for a query, from chunk rankings, the way the service retrieves."""

    def __init__(self, snapshot: Snapshot, embedder: Embedder, doc_of: dict[str, str],
                 depth: int = DEPTH) -> None:
        self.snapshot = snapshot
        self.embedder = embedder
        self.retriever = Retriever(snapshot, candidates=depth)
        rows = snapshot.chunks(snapshot.chunk_ids())
        self.doc_of_chunk = {c.id: doc_of.get(c.path, c.path) for c in rows}
        self.depth = depth

    def to_docs(self, chunk_ids: Sequence[int]) -> list[str]:
        """Best chunk first: a document's place is its best chunk's."""
        return list(dict.fromkeys(self.doc_of_chunk[c] for c in chunk_ids
                                  if c in self.doc_of_chunk))

    def lexical_chunks(self, query: str) -> list[int]:
        return self.retriever.lexical(query)

    def dense_chunks(self, query: str) -> list[int]:
        vector = self.embedder.embed([query], urgent=True)[0]
        return [i for i, _ in self.snapshot.search_dense(vector, self.depth)]

    @staticmethod
    def fuse(lexical: list[int], dense: list[int], k: int = 60,
             lexical_weight: float = 1.0) -> list[int]:
        return [c for c, _ in fuse([lexical, dense], k, weights=(lexical_weight, 1.0))]

    def rank(self, query: str, mode: Mode, k: int = 60,
             lexical_weight: float = 1.0) -> list[str]:
        if mode == Mode.LEXICAL:
            return self.to_docs(self.lexical_chunks(query))
        if mode == Mode.DENSE:
            return self.to_docs(self.dense_chunks(query))
        return self.to_docs(self.fuse(self.lexical_chunks(query), self.dense_chunks(query),
                                      k, lexical_weight))


def evaluate(ds: BeirDataset, ranker: DocRanker, rrf_k: int, lexical_weight: float,
             modes: Sequence[Mode] = MODES, trec_runs: Path | None = None
             ) -> dict[str, dict[str, float]]:
    """The metrics of each mode. `trec_runs`: a folder to write each mode's ranking to, as a
    TREC run file (`<mode>.run`), for trec_eval, pytrec_eval or ir-measures."""
    results = {}
    for mode in modes:
        runs, started = {}, time.perf_counter()
        for qid, text in ds.queries.items():
            runs[qid] = ranker.rank(text, mode, rrf_k, lexical_weight)[:100]
        seconds = time.perf_counter() - started
        results[mode.value] = {**{m: round(v, 4) for m, v in summarize(runs, ds.qrels).items()},
                               "qps": round(len(ds.queries) / seconds, 1)}
        if trec_runs is not None:
            write_trec_run(trec_runs / f"{mode.value}.run", runs, f"ragfirst-{mode.value}")
    return results


def write_trec_run(path: Path, runs: dict[str, Sequence[str]], tag: str) -> None:
    """`qid Q0 docid rank score tag` lines, best first; the score falls with the rank, so a
    tool that sorts by score keeps our order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for qid, docs in runs.items():
            for rank, doc in enumerate(docs, start=1):
                f.write(f"{qid} Q0 {doc} {rank} {len(docs) - rank + 1} {tag}\n")


def sweep(ds: BeirDataset, ranker: DocRanker, ks: Sequence[int] = (10, 20, 40, 60, 100, 200),
          weights: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)) -> list[dict]:
    """nDCG@10 of hybrid for each fusion constant and lexical weight (rankings computed once)."""
    lexical = {q: ranker.lexical_chunks(t) for q, t in ds.queries.items()}
    dense = {q: ranker.dense_chunks(t) for q, t in ds.queries.items()}
    rows = []
    for k in ks:
        for w in weights:
            runs = {q: ranker.to_docs(ranker.fuse(lexical[q], dense[q], k, w))[:10]
                    for q in ds.queries}
            ndcg = sum(ndcg_at(runs[q], ds.qrels[q], 10) for q in ds.queries) / len(ds.queries)
            rows.append({"rrf_k": k, "lexical_weight": w, "ndcg@10": round(ndcg, 4)})
    for name, runs in (("lexical", lexical), ("dense", dense)):
        docs = {q: ranker.to_docs(r)[:10] for q, r in runs.items()}
        ndcg = sum(ndcg_at(docs[q], ds.qrels[q], 10) for q in ds.queries) / len(ds.queries)
        rows.append({"rrf_k": None, "lexical_weight": None, "mode": name,
                     "ndcg@10": round(ndcg, 4)})
    return rows


def markdown(ds: BeirDataset, results: dict, chunks: int) -> str:
    lines = [f"BEIR {ds.name}, {ds.split} split: {len(ds.queries)} queries, "
             f"{len(ds.corpus):,} documents in {chunks:,} chunks", "",
             "| retrieval | nDCG@10 | Recall@10 | Recall@100 | MRR@10 | queries/s |",
             "|---|---|---|---|---|---|"]
    for mode, r in results.items():
        lines.append(f"| {mode} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | "
                     f"{r['recall@100']:.4f} | {r['mrr@10']:.4f} | {r['qps']} |")
    return "\n".join(lines)


def sweep_table(ds: BeirDataset, rows: list[dict]) -> str:
    lines = [f"Hybrid nDCG@10 on {ds.name} ({ds.split}, {len(ds.queries)} queries)",
             "| retrieval | rrf_k | lexical weight | nDCG@10 |", "|---|---|---|---|"]
    lines += [f"| {r.get('mode', 'hybrid')} | {r['rrf_k'] or '-'} | "
              f"{r['lexical_weight'] or '-'} | {r['ndcg@10']:.4f} |" for r in rows]
    return "\n".join(lines)


def run(path: Path, *, split: str = "test", as_json: bool = False, do_sweep: bool = False,
        settings: Settings | None = None, embedder: Embedder | None = None,
        out: Callable[[str], None] = print, trec_runs: Path | None = None) -> dict:
    settings = settings or Settings.load()
    ds = load_beir(path, split)
    embedder = embedder or build_embedder(settings)
    print(f"indexing {len(ds.corpus):,} documents of {ds.name} (incremental; the first run "
          "embeds them all)...", file=sys.stderr)
    eval_settings, doc_of = build_index(ds, settings, embedder, progress=None)
    with closing(open_reader(eval_settings)) as reader, closing(reader.open()) as snapshot:
        ranker = DocRanker(snapshot, embedder, doc_of)
        ranker.dense_chunks("warm-up")
        if do_sweep:
            body = {"dataset": ds.name, "split": split, "sweep": sweep(ds, ranker)}
            out(json.dumps(body) if as_json else sweep_table(ds, body["sweep"]))
            return body
        results = evaluate(ds, ranker, settings.rrf_k, settings.lexical_weight,
                           trec_runs=trec_runs)
        chunks = snapshot.chunk_count
    body = {"dataset": ds.name, "split": split, "queries": len(ds.queries), "chunks": chunks,
            "results": results}
    out(json.dumps(body) if as_json else markdown(ds, results, chunks))
    return body
