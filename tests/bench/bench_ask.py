"""`make bench-ask`: /ask latency over HTTP with the extractive generator, at 1 and 8 concurrent
clients, on the starter corpus and on a generated 100,000-chunk index, on each store
(`--store sqlite,postgres`; both by default when a PostgreSQL can be had: RAG_DATABASE_URL, or
an embedded one started for the run), side by side in one run: every store's service runs at
once and the load levels alternate between them in rounds, so a noisy minute on this shared
machine does not land on one store only.

The big index is generated (tests/bench/big_index.py: the starter corpus' sentences, stand-in
vectors) and written through the writer seam, the same documents and vectors into each store.
On the starter corpus it also times the labelled follow-ups (app/eval/data), on the first
store: with their history, as their rewritten form without history, and alone. Reports
p50/p95/p99 of the end-to-end time seen by the client, and of the server's embed, retrieve and
generate times, and of everything else (HTTP, JSON, citation checks, prompt budget) =
end-to-end minus those three; and the part of that spent inside the server's pipeline (its
total minus the three), the rest being HTTP on both sides, uvicorn and the client itself, which
shares the machine's two cores. Then the memory of each service (and of the PostgreSQL
server), the index's build time and size per store, and on PostgreSQL the HNSW index's
recall@10 against exact search (tests/bench/bench_hnsw.py).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from ingest.embedders import Embedder, build_embedder
from ingest.settings import IngestSettings
from ingest.store import open_reader
from ingest.sync import run_ingest
from app.conversation import retrieval_query
from app.eval.conversations import CONVERSATIONS, history_of
from app.eval.starter import load_questions
from tests.bench import bench_hnsw
from tests.bench.big_index import build_big_index, corpus_sentences
from tests.bench.stores import (BenchStore, parse_stores, postgres_url, process_memory,
                                server_memory, service_pids, table_sizes)
from tests.bench.report import percentiles, print_table, write_json
from tests.service_process import running_service
from tests.helpers import ROOT

QUESTIONS = ROOT / "tests" / "data" / "abstention_questions.jsonl"


def load_rows(url: str, questions: list[str] | list[dict], clients: int,
              requests: int) -> tuple[list[dict], float]:
    """`requests` questions (texts, or /ask bodies) in total, spread over `clients` threads,
    each with its own connection: the timings (ms) of each request, and the wall seconds."""
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
    return rows, time.perf_counter() - started


def summary(rows: list[dict], wall: float) -> dict:
    """Percentiles per component (ms), and questions answered per second."""
    out = {key: percentiles([r[key] for r in rows]) for key in rows[0]}
    out["qps"] = round(len(rows) / wall, 1)
    return out


def load(url: str, questions: list[str] | list[dict], clients: int, requests: int) -> dict:
    return summary(*load_rows(url, questions, clients, requests))


def side_by_side(urls: dict[str, str], questions: list[str], clients: int, requests: int,
                 rounds: int = 2) -> dict[str, dict]:
    """The same load on each service, alternating in `rounds`: one summary per store over all
    of its rounds' requests."""
    rows: dict[str, list[dict]] = {name: [] for name in urls}
    walls = dict.fromkeys(urls, 0.0)
    for _ in range(rounds):
        for name, url in urls.items():
            got, wall = load_rows(url, questions, clients, requests // rounds)
            rows[name] += got
            walls[name] += wall
    return {name: summary(rows[name], walls[name]) for name in urls}


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


def conversation_rows(name: str, url: str, requests: int, rounds: int = 4) -> list[dict]:
    """The follow-ups' three kinds in interleaved rounds, so a noisy minute does not land on
    one of them only: one row per kind, the median over the rounds of each percentile."""
    by_kind: dict[str, list[dict]] = {}
    bodies = follow_ups()
    for _ in range(rounds):
        for kind, asked in bodies.items():
            by_kind.setdefault(kind, []).append(load(url, asked, 1, requests // rounds))
    out = []
    for kind, rs in by_kind.items():
        row = {"index": f"{name}: {kind}", "clients": 1,
               "qps": round(statistics.median(r["qps"] for r in rs), 1)}
        for key in ("total", "embed", "retrieve", "generate", "rest", "server_rest"):
            row[key] = {p: round(statistics.median(r[key][p] for r in rs), 1)
                        for p in ("p50", "p95", "p99")}
        out.append(row)
    return out


@contextmanager
def services(stores: list[BenchStore], corpus: Path) -> Iterator[dict[str, str]]:
    """One service per store, all running at once: {store: base URL}. No watcher: the big
    index has no corpus folder behind it (a catch-up ingest over the empty folder would delete
    it), and a watcher would only add noise to the timings."""
    with ExitStack() as stack:
        yield {s.name: stack.enter_context(running_service(s.index_dir, corpus, timeout=600,
                                                           RAG_WATCH="false", **s.env()))
               for s in stores}


def lexical_ready(url: str, wait_s: float = 1800) -> str:
    """Waits while the service builds its in-memory BM25 index (FTS5 ranks meanwhile), so
    that what is timed is the service as it runs from then on; how it ranks (/readyz)."""
    deadline = time.monotonic() + wait_s
    while True:
        state = httpx.get(f"{url}/readyz", timeout=30).json().get("lexical_index", "")
        if state != "building" or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def memory(urls: dict[str, str], pg: str | None) -> dict[str, dict]:
    """Each service's memory after its load; the PostgreSQL server's (its connections to the
    services still open)."""
    out = {f"service ({name})": process_memory(service_pids(int(url.rsplit(":", 1)[1])))
           for name, url in urls.items()}
    if pg is not None:
        out["PostgreSQL server"] = server_memory(pg)
    return out


def run(label: str, stores: list[BenchStore], corpus: Path, questions: list[str],
        args: argparse.Namespace, conversations: bool = False) -> tuple[list[dict], dict]:
    results = []
    with services(stores, corpus) as urls:
        for url in urls.values():
            load(url, questions, 1, 20)  # warm-up: models, caches, index pages
            lexical_ready(url)
        for clients in args.clients:
            for name, r in side_by_side(urls, questions, clients, args.requests).items():
                results.append({"index": f"{label}, {name}", "clients": clients, **r})
            print(f"  {label}, {clients} client(s): done", flush=True)
        if conversations:
            first = stores[0].name
            results += conversation_rows(f"{label}, {first}", urls[first], args.requests)
        mem = memory(urls, next((s.url for s in stores if s.name == "postgres"), None))
    return results, mem


def storage(store: BenchStore, corpus: Path) -> dict[str, int]:
    reader = open_reader(store.settings(corpus))
    try:
        return {k: round(v / 2**20) for k, v in reader.storage().items()}
    finally:
        reader.close()


def big_index(stores: list[BenchStore], tmp: Path, chunks: int,
              embedder: Embedder) -> dict[str, dict]:
    """The generated index in each store; seconds per step and MB per part."""
    sentences = corpus_sentences()
    sentence_vecs = embedder.embed(sentences)
    (tmp / "empty").mkdir(exist_ok=True)
    built = {}
    for store in stores:
        times = build_big_index(store.fresh().settings(tmp / "empty"), chunks, sentences,
                                sentence_vecs)
        built[store.name] = {**times, "mb": storage(store, tmp / "empty")}
        if store.name == "postgres":
            built[store.name]["tables_mb"] = table_sizes(store.url or "", store.schema)
        print(f"built the {chunks:,}-chunk index on {store.name}: {times}", flush=True)
    return built


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunks", type=int, default=100_000, help="0: the starter corpus only")
    p.add_argument("--requests", type=int, default=200, help="per load level and store")
    p.add_argument("--clients", type=lambda t: [int(x) for x in t.split(",")], default=[1, 8],
                   help="load levels, e.g. 1,8")
    p.add_argument("--store", help="sqlite,postgres (default: both when PostgreSQL can be had)")
    p.add_argument("--starter", action=argparse.BooleanOptionalAction, default=True,
                   help="also the starter corpus (and its follow-ups)")
    p.add_argument("--recall", action=argparse.BooleanOptionalAction, default=True,
                   help="HNSW recall@10 and build time on the big index (PostgreSQL)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    args.store = parse_stores(args.store)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # Answerable questions only: an abstention skips generation and the citation check, and
    # would flatter the percentiles.
    rows = [json.loads(x) for x in QUESTIONS.read_text().splitlines() if x.strip()]
    questions = [r["q"] for r in rows if r["answerable"]]
    report: dict = {"stores": args.store, "latency": [], "memory": {}}
    embedder = build_embedder(IngestSettings())
    with tempfile.TemporaryDirectory(prefix="bench-ask-") as tmp, \
            postgres_url(args.store) as pg:
        tmp = Path(tmp)
        if args.starter:
            stores = [BenchStore(n, tmp / f"starter-{n}", pg, "bench_ask_starter").fresh()
                      for n in args.store]
            for store in stores:
                run_ingest(store.settings(ROOT / "corpus"), embedder, progress=False)
            lat, report["memory"]["starter"] = run("starter", stores, ROOT / "corpus",
                                                   questions, args, conversations=True)
            report["latency"] += lat
        if args.chunks:
            stores = [BenchStore(n, tmp / f"big-{n}", pg, "bench_ask_big") for n in args.store]
            report["build"] = big_index(stores, tmp, args.chunks, embedder)
            label = f"{args.chunks // 1000:,}k"
            lat, report["memory"][label] = run(label, stores, tmp / "empty", questions, args)
            report["latency"] += lat
            if args.recall and pg is not None:
                sqlite_dir = tmp / "big-sqlite" if "sqlite" in args.store else None
                report["hnsw"] = bench_hnsw.measure(pg, "bench_ask_big", sqlite_dir,
                                                    embedder.embed(bench_hnsw.query_texts()))
    print_report(report)
    write_json(args.json, report)
    return report


def print_report(report: dict) -> None:
    fmt = lambda d: f"{d['p50']} / {d['p95']} / {d['p99']}"  # noqa: E731
    print_table(["index", "clients", "qps", "end-to-end p50/p95/p99 ms", "embed p50/p95/p99",
                 "retrieve p50/p95/p99", "generate p50/p95/p99", "rest p50/p95/p99",
                 "of which in the server"],
                [[r["index"], r["clients"], r["qps"], fmt(r["total"]), fmt(r["embed"]),
                  fmt(r["retrieve"]), fmt(r["generate"]), fmt(r["rest"]), fmt(r["server_rest"])]
                 for r in report["latency"]])
    print_table(["index", "process", "RSS MB", "PSS MB", "peak RSS MB (largest process)"],
                [[index, proc, m["rss_mb"], m["pss_mb"], m["peak_rss_mb"]]
                 for index, procs in report["memory"].items() for proc, m in procs.items()])
    if "build" in report:
        print_table(["store", "vectors s", "commit s", "publish s", "total s", "MB by part"],
                    [[name, b["vectors_s"], b["commit_s"], b["publish_s"], b["total_s"],
                      ", ".join(f"{k} {v}" for k, v in b["mb"].items())]
                     for name, b in report["build"].items()])
    for name, b in report.get("build", {}).items():
        if "tables_mb" in b:
            print(f"\n{name} tables (with their indexes) and indexes, MB: " +
                  ", ".join(f"{k} {v}" for k, v in b["tables_mb"].items()))
    if "hnsw" in report:
        bench_hnsw.print_report(report["hnsw"])


if __name__ == "__main__":
    main()
