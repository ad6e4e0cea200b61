"""`make bench-peer`: ragfirst side by side with LlamaIndex 0.14 (the framework users pick
most), the same model (all-MiniLM-L6-v2 from the same offline package), the same SciFact
abstracts and questions, the same two cores, one run.

- `--part ingest` (in `make bench-ingest`): a whole `python -m ingest` with `torch` and with
  `onnx-int8` (RAG_EMBED_BACKEND) against a whole LlamaIndex process that reads, splits, embeds,
  builds its vector index and its BM25 retriever and persists both (tests/bench/
  peer_llamaindex.py): wall seconds from start to exit, imports and the model load included, as
  a user waits for them. Runs alternate `--repeat` times; the best of each counts.
- `--part ask` (in `make bench-ask`): per question, the query embedding and a hybrid top-10
  retrieval, p50/p95/p99 ms. Ours inside the service (/ask's `timings_ms`, over HTTP, one
  client, `top_k` 10 and RAG_CANDIDATES=10: the peer's work; and the client-observed
  end-to-end time of the whole answer); LlamaIndex in-process (its QueryFusionRetriever over
  vector top 10 and BM25 top 10), no HTTP. The like-for-like row is torch's: the peer
  embeds with torch too.

LlamaIndex runs in its own virtual environment, made by `make peer-venv` (.venv-peer); without
it, this prints how to make one and exits 0, so `make bench` still runs on a machine without
it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.eval.beir import load_beir, write_documents
from tests.bench.report import percentiles, print_table, write_json
from tests.helpers import ROOT, subprocess_env
from tests.service_process import running_service

PEER = ROOT / ".venv-peer"
PEER_PYTHON = PEER / "bin" / "python"
PEER_INSTALLED = PEER / ".installed"  # make peer-venv's stamp: pip is done
PEER_SCRIPT = ROOT / "tests" / "bench" / "peer_llamaindex.py"
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"
OURS = ("torch", "onnx-int8")


def scifact_subset(data: Path, n_docs: int) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """`n_docs` abstracts (id -> title, text): those the test questions are judged against
    first, then the rest in corpus order; and the test questions whose judged abstracts are
    all among them."""
    ds = load_beir(data)
    wanted = set().union(*ds.qrels.values())
    order = [d for d in ds.corpus if d in wanted] + [d for d in ds.corpus if d not in wanted]
    docs = {d: ds.corpus[d] for d in order[:n_docs]}
    questions = [ds.queries[q] for q, judged in ds.qrels.items() if judged.keys() <= docs.keys()]
    return docs, questions


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, dict]:
    """Wall seconds of a whole process, and the JSON object it printed last."""
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{cmd[:3]} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def ours_ingest(corpus: Path, index: Path, backend: str) -> tuple[float, int]:
    """A whole `python -m ingest` into an empty index: seconds, chunks embedded."""
    seconds, report = timed([sys.executable, "-m", "ingest", "--json", "--quiet"],
                            subprocess_env(RAG_CORPUS_DIR=str(corpus), RAG_INDEX_DIR=str(index),
                                           RAG_EMBED_BACKEND=backend))
    return seconds, report["chunks"]["embedded"]


def peer_ingest(corpus: Path, persist: Path) -> tuple[float, dict]:
    return timed([str(PEER_PYTHON), str(PEER_SCRIPT), "ingest", str(corpus), str(persist)],
                 peer_env())


def peer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "PYTHON"))}
    env["HF_HUB_OFFLINE"] = "1"  # the model is a local folder: nothing to fetch
    return env


def ingest_part(work: Path, corpus: Path, repeat: int) -> list[dict]:
    """Whole processes, alternating; the best of `repeat` of each."""
    best: dict[str, tuple[float, int]] = {}
    for r in range(repeat):
        for name in (*OURS, "llamaindex"):
            target = work / f"ingest-{name}-{r}"
            if name == "llamaindex":
                seconds, info = peer_ingest(corpus, target)
                chunks = info["chunks"]
            else:
                seconds, chunks = ours_ingest(corpus, target, name)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, chunks)
            print(f"  ingest {name}, run {r + 1}: {seconds:.1f} s, {chunks} chunks", flush=True)
    peer_s = best["llamaindex"][0]
    return [{"system": label(name), "chunks": chunks, "whole_process_s": round(s, 1),
             "chunks_per_s": round(chunks / s, 1), "speed_vs_llamaindex": round(peer_s / s, 2)}
            for name, (s, chunks) in best.items()]


def label(name: str) -> str:
    return "LlamaIndex 0.14 (torch)" if name == "llamaindex" else f"ragfirst ({name})"


def p50_95_99(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in percentiles(values).values())


def ours_ask(corpus: Path, index: Path, backend: str, questions: list[str]) -> dict:
    """Each question once over HTTP, one client, after a warm-up: the server's embed and
    retrieve times, and the client's end-to-end time of the whole answer."""
    rows = []
    # The peer's work: 10 candidates from each retriever, fused, 10 kept.
    with running_service(index, corpus, RAG_EMBED_BACKEND=backend, RAG_CANDIDATES="10") as url, \
            httpx.Client(timeout=60) as client:
        for q in questions[:20]:
            client.post(f"{url}/ask", json={"question": q, "top_k": 10}).raise_for_status()
        for q in questions:
            t0 = time.perf_counter()
            r = client.post(f"{url}/ask", json={"question": q, "top_k": 10})
            total = (time.perf_counter() - t0) * 1000
            r.raise_for_status()
            t = r.json()["timings_ms"]
            rows.append({"embed": t["embed"], "retrieve": t["retrieve"], "total": total})
    return row(label(backend), "in the service (HTTP)", rows)


def row(system: str, where: str, rows: list[dict]) -> dict:
    out = {"system": system, "where": where, "questions": len(rows),
           "embed": p50_95_99([r["embed"] for r in rows]),
           "retrieve": p50_95_99([r["retrieve"] for r in rows]),
           "embed_plus_retrieve": p50_95_99([r["embed"] + r["retrieve"] for r in rows]),
           "p50_embed_plus_retrieve": statistics.median(r["embed"] + r["retrieve"]
                                                        for r in rows)}
    out["end_to_end"] = p50_95_99([r["total"] for r in rows]) if "total" in rows[0] else "-"
    return out


def ask_part(work: Path, corpus: Path, questions: list[str]) -> list[dict]:
    out = []
    for backend in OURS:
        index = work / f"ask-{backend}"
        ours_ingest(corpus, index, backend)
        out.append(ours_ask(corpus, index, backend, questions))
    persist = work / "ask-llamaindex"
    peer_ingest(corpus, persist)
    queries = work / "questions.jsonl"
    queries.write_text("".join(json.dumps({"text": q}) + "\n" for q in questions))
    _, found = timed([str(PEER_PYTHON), str(PEER_SCRIPT), "retrieve", str(persist),
                      str(queries)], peer_env())
    assert all(r["found"] == 10 for r in found["rows"]), "LlamaIndex returned fewer than 10"
    out.append(row(label("llamaindex"), "in-process", found["rows"]))
    peer_p50 = out[-1]["p50_embed_plus_retrieve"]
    for r in out:
        r["speed_vs_llamaindex"] = round(peer_p50 / r.pop("p50_embed_plus_retrieve"), 2)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("ingest", "ask", "both"), default="both")
    p.add_argument("--docs", type=int, default=1200, help="SciFact abstracts")
    p.add_argument("--repeat", type=int, default=2, help="whole ingests of each; the best counts")
    p.add_argument("--data", type=Path, default=SCIFACT, help="a BEIR-format SciFact folder")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not PEER_INSTALLED.exists():
        print(f"bench-peer: skipped, no {PEER_INSTALLED.relative_to(ROOT)} (make peer-venv)")
        return {}
    if not (args.data / "corpus.jsonl").exists():
        print(f"bench-peer: skipped, no SciFact at {args.data}")
        return {}
    docs, questions = scifact_subset(args.data, args.docs)
    if len(questions) < 2:
        raise SystemExit(f"bench-peer: {args.docs} abstracts cover {len(questions)} test "
                         "question(s); percentiles need at least 2 (a larger --docs)")
    report: dict = {"documents": len(docs), "questions": len(questions)}
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        work = Path(tmp)
        write_documents(docs, work / "corpus")
        if args.part in ("ingest", "both"):
            report["ingest"] = ingest_part(work, work / "corpus", args.repeat)
        if args.part in ("ask", "both"):
            report["ask"] = ask_part(work, work / "corpus", questions)
    print_report(report)
    write_json(args.json, report)
    return report


def print_report(report: dict) -> None:
    print(f"\nragfirst and LlamaIndex, {report['documents']} SciFact abstracts, "
          f"{report['questions']} questions, {os.cpu_count()} cores")
    if "ingest" in report:
        cols = ["system", "chunks", "whole_process_s", "chunks_per_s", "speed_vs_llamaindex"]
        print_table(cols, [[r[c] for c in cols] for r in report["ingest"]])
    if "ask" in report:
        cols = ["system", "where", "questions", "embed", "retrieve", "embed_plus_retrieve",
                "speed_vs_llamaindex", "end_to_end"]
        print_table(["system", "where", "questions", "embed p50/p95/p99 ms",
                     "retrieve p50/p95/p99", "embed + retrieve p50/p95/p99",
                     "speed vs LlamaIndex (p50)", "whole answer, client-observed"],
                    [[r[c] for c in cols] for r in report["ask"]])


if __name__ == "__main__":
    main()
