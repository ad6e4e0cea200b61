"""`python -m tests.bench.bench_snapshot`: what a request's snapshot costs, in-process on the
starter corpus (hashing embedder, so the model does not blur it): microseconds to lease and
release a snapshot of the index, 3,000 times, and the service's retrieval for one question,
300 times; p50 / p95. On each store (`--store sqlite,postgres`, both by default when a
PostgreSQL can be had): on PostgreSQL a lease is the revision check every request makes (a
repeatable-read transaction on a pooled connection and the meta row). It uses only the
service's public API (and RAG_STORE settings where the tree has them)."""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from app.service import Question, RagService
from app.settings import Settings
from ingest.embedders import HashingEmbedder
from ingest.sync import run_ingest

ROOT = Path(__file__).resolve().parents[2]


def timed(fn, n: int, scale: float) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * scale)
    q = statistics.quantiles(times, n=100)
    return q[49], q[94]


def measure(settings: Settings) -> tuple[tuple[float, float], tuple[float, float]]:
    run_ingest(settings, HashingEmbedder())
    svc = RagService.from_settings(settings)
    svc.warm_up()

    def lease() -> None:
        with svc.index.lease() as snapshot:
            snapshot.generation

    question = Question("How long do I have to get a full refund on an annual plan?", 5)
    try:
        timed(lease, 200, 1e6)  # warm
        lease_us = timed(lease, 3000, 1e6)
        retrieve_ms = timed(lambda: svc.retrieve(question), 300, 1e3)
    finally:
        svc.close()
    return lease_us, retrieve_ms


def main(argv: list[str] | None = None) -> None:
    from tests.bench.stores import BenchStore, parse_stores, postgres_url

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", help="sqlite,postgres (default: both when PostgreSQL can be had)")
    stores = parse_stores(p.parse_args(argv).store)
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp, \
            postgres_url(stores) as url:
        base = Path(tmp)
        shutil.copytree(ROOT / "corpus", base / "corpus")
        for name in stores:
            store = BenchStore(name, base / f"index-{name}", url, "bench_snapshot").fresh()
            extra = store.settings(base / "corpus").model_dump(
                include={"store", "database_url", "database_schema", "index_dir"})
            settings = Settings(corpus_dir=base / "corpus", embedder="hashing",
                                _env_file=None, **extra)
            lease_us, retrieve_ms = measure(settings)
            print(f"{name}: lease and release a snapshot: p50 {lease_us[0]:.1f} us, "
                  f"p95 {lease_us[1]:.1f} us")
            print(f"{name}: retrieval of one question:    p50 {retrieve_ms[0]:.2f} ms, "
                  f"p95 {retrieve_ms[1]:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
