"""`make bench-freshness`: how long from a file written to the corpus until /ask cites it.

The real service (`python -m app`, real MiniLM) on a copy of the starter corpus. For each
trial a small document with a unique fact is written (a new file, or an edit of the previous
one), then the same question is asked over HTTP every 20 ms until an answer cites the file
with the new fact: the time from the write's close to that answer is the trial's figure.
Deletions are timed until the file is no longer cited. Three ways to get the change in:
  watcher            the service's own watcher (RAG_WATCH=true, default quiet period 300 ms)
  watcher, 8 clients the same while 8 other clients ask the service without pause (starter
                     questions): the query embedding and the ingest share the two cores
  manual             `make ingest` run by hand right after the write (service with
                     RAG_WATCH=false); the time includes the make and Python start-up, as a
                     user would see it.
  upload             POST /collections/default/documents (RAG_WATCH=false: the upload's
                     own ingest), overwrite=true for the change, DELETE for the deletion;
                     timed from the request's start, so the upload and its ingest count.
  other replica      two replicas on one PostgreSQL (an embedded one, or RAG_DATABASE_URL):
                     the first watches the corpus, the question goes to the second, which
                     learns of the commit only through its per-request revision check.
Reports p50/p95/max per scenario, and what the ingest run itself took (for the watcher: the
service's own timing of its run, from /readyz).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.helpers import ROOT, subprocess_env
from tests.service_process import running_service

LOAD_QUESTIONS = ["How long do I have to get a full refund on an annual plan?",
                  "What does the Business plan cost?", "When will API v1 be removed?",
                  "What is the monthly uptime commitment of the Business plan?"]


def percentiles(values: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(qs[49], 2), "p95": round(qs[94], 2), "max": round(max(values), 2)}


def until(http: httpx.Client, question: str, done, start: float) -> float:
    """Ask until `done(body)`; seconds since `start`."""
    while True:
        r = http.post("/ask", json={"question": question})
        r.raise_for_status()
        if done(r.json()):
            return time.perf_counter() - start
        if time.perf_counter() - start > 60:
            raise RuntimeError(f"not citable after 60 s: {question}")
        time.sleep(0.02)


def storeroom(t: int, folder: str = ""):
    """Trial t's document: its path, its question, what counts as citing it (with a code in
    the answer, if given), and its two versions: (kind, code, text)."""
    rel = f"{folder}storeroom-{t}.md"
    question = f"What is the locker code of storeroom {t}?"

    def cites(body: dict, code: str | None = None) -> bool:
        return (rel in {c["path"] for c in body["citations"]}
                and (code is None or code in body["answer"]))

    versions = [(kind, code, f"# Storeroom {t}\n\nThe locker code of storeroom {t} is {code}. "
                             "Ask the front desk for the key.\n")
                for kind, code in (("add", f"{t}-A-{4000 + t}"), ("change", f"{t}-B-{7000 + t}"))]
    return rel, question, cites, versions


def trials(url: str, corpus: Path, n: int, after_write,
           runs_on: str | None = None) -> dict[str, list[float]]:
    """n trials of each kind: add (a new file), change (edit it), delete (remove it).
    `runs_on`: the service whose watcher ingests (default: the one asked)."""
    out: dict[str, list[float]] = {"add": [], "change": [], "delete": [], "ingest_s": []}
    with httpx.Client(base_url=url, timeout=60) as http, \
            httpx.Client(base_url=runs_on or url, timeout=60) as runner:
        for t in range(n):
            rel, question, cites, versions = storeroom(t)
            for kind, code, text in versions:
                (corpus / rel).write_text(text)
                start = time.perf_counter()
                ingest_s = after_write()
                out[kind].append(until(http, question, lambda b, c=code: cites(b, c), start))
                if ingest_s is None:  # the watcher's run: the service reports its time
                    ingest_s = runner.get("/readyz").json()["ingest"]["last"]["seconds"]
                out["ingest_s"].append(ingest_s)
            (corpus / rel).unlink()
            start = time.perf_counter()
            after_write()
            out["delete"].append(until(http, question, lambda b: not cites(b), start))
    return out


def upload_trials(url: str, n: int) -> dict[str, list[float]]:
    """n trials of add, change, delete through the documents API instead of the folder."""
    out: dict[str, list[float]] = {"add": [], "change": [], "delete": [], "ingest_s": []}
    docs = "/collections/default/documents"
    with httpx.Client(base_url=url, timeout=60) as http:
        for t in range(n):
            rel, question, cites, versions = storeroom(t, "uploads/")
            for kind, code, text in versions:
                start = time.perf_counter()
                r = http.post(docs, files={"file": (rel, text.encode())},
                              data={"overwrite": "true"})
                r.raise_for_status()
                out[kind].append(until(http, question, lambda b, c=code: cites(b, c), start))
                out["ingest_s"].append(r.json()["ingest"]["seconds"])
            start = time.perf_counter()
            http.delete(f"{docs}/{rel}").raise_for_status()
            out["delete"].append(until(http, question, lambda b: not cites(b), start))
    return out


@contextmanager
def load(url: str, clients: int):
    """`clients` threads asking without pause, until the block ends; yields their count of
    answers so far (a list, appended to)."""
    stop, answers = threading.Event(), []

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set():
                http.post("/ask", json={"question": LOAD_QUESTIONS[i % len(LOAD_QUESTIONS)]})
                answers.append(1)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        yield answers
    finally:
        stop.set()
        for t in threads:
            t.join(60)


def replicas(tmp: Path, n: int) -> dict[str, list[float]]:
    """The `other replica` row: two services on one PostgreSQL, the first watching."""
    import os

    from tests.postgres import embedded_server, pg_env

    corpus = tmp / "corpus-pg"
    shutil.copytree(ROOT / "corpus", corpus)
    with ExitStack() as stack:
        url = os.environ.get("RAG_DATABASE_URL") or stack.enter_context(
            embedded_server(tmp / "pgdata"))
        env = pg_env(url, "bench_freshness")
        subprocess.run(["make", "-s", "ingest", "ARGS=--quiet --rebuild"], cwd=ROOT, check=True,
                       env=subprocess_env(RAG_CORPUS_DIR=str(corpus), **env),
                       stdout=subprocess.DEVNULL)
        watching = stack.enter_context(running_service(tmp / "pg-a", corpus, timeout=600,
                                                       RAG_WATCH="true", **env))
        other = stack.enter_context(running_service(tmp / "pg-b", corpus, timeout=600, **env))
        while httpx.get(f"{watching}/readyz").json()["ingest"]["runs"] < 1:
            time.sleep(0.1)
        return trials(other, corpus, n, lambda: None, runs_on=watching)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--json", type=Path)
    p.add_argument("--no-manual", action="store_true", help="only the watcher rows")
    p.add_argument("--only-replicas", action="store_true",
                   help="only the PostgreSQL replicas row")
    p.add_argument("--only-uploads", action="store_true", help="only the upload row")
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-fresh-") as tmp:
        if not args.only_uploads:
            results["other replica (PostgreSQL)"] = replicas(Path(tmp), args.trials)
            print("  other replica: done", flush=True)
        if args.only_replicas:
            _print(results, args)
            return
        tmp = Path(tmp)
        corpus, index = tmp / "corpus", tmp / "index"
        shutil.copytree(ROOT / "corpus", corpus)
        env = dict(RAG_CORPUS_DIR=str(corpus), RAG_INDEX_DIR=str(index))
        subprocess.run(["make", "-s", "ingest", "ARGS=--quiet"], cwd=ROOT, check=True,
                       env=subprocess_env(**env), stdout=subprocess.DEVNULL)

        with running_service(index, corpus, timeout=600, RAG_WATCH="false") as url:
            results["upload"] = upload_trials(url, args.trials)
            print("  upload: done", flush=True)
        if args.only_uploads:
            _print(results, args)
            return
        with running_service(index, corpus, timeout=600, RAG_WATCH="true") as url:
            while httpx.get(f"{url}/readyz").json()["ingest"]["runs"] < 1:
                time.sleep(0.1)  # the catch-up run is done
            results["watcher"] = trials(url, corpus, args.trials, lambda: None)
            print("  watcher: done", flush=True)
            with load(url, 8) as answers:
                started = time.perf_counter()
                results["watcher, 8 clients"] = trials(url, corpus, args.trials, lambda: None)
                qps = len(answers) / (time.perf_counter() - started)
            print(f"  watcher, 8 clients: done ({qps:.1f} answers/s to the clients)", flush=True)

        def make_ingest() -> float:
            t0 = time.perf_counter()
            subprocess.run(["make", "-s", "ingest", "ARGS=--quiet"], cwd=ROOT, check=True,
                           env=subprocess_env(**env), stdout=subprocess.DEVNULL)
            return time.perf_counter() - t0

        if not args.no_manual:
            with running_service(index, corpus, timeout=600, RAG_WATCH="false") as url:
                results["manual"] = trials(url, corpus, args.trials, make_ingest)
                print("  manual: done", flush=True)
    _print(results, args)


def _print(results: dict, args) -> None:
    print(f"\nSeconds from the write to the first answer that cites it ({args.trials} trials "
          "each; deletions: until no longer cited)\n")
    print("| how | added file p50 / p95 / max | changed file | deleted file | ingest run itself |")
    print("|---|---|---|---|---|")
    fmt = lambda d: f"{d['p50']} / {d['p95']} / {d['max']}"  # noqa: E731
    for how, r in results.items():
        ingest = fmt(percentiles(r["ingest_s"]))
        print(f"| {how} | {fmt(percentiles(r['add']))} | {fmt(percentiles(r['change']))} | "
              f"{fmt(percentiles(r['delete']))} | {ingest} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
