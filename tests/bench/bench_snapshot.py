"""`python -m tests.bench.bench_snapshot`: what a request's snapshot costs, in-process on the
starter corpus (hashing embedder, so the model does not blur it): microseconds to lease and
release a snapshot of the index, 3,000 times, and the service's retrieval for one question,
300 times; p50 / p95. It uses only the service's public API, so it runs on older trees too."""
from __future__ import annotations

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


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        base = Path(tmp)
        shutil.copytree(ROOT / "corpus", base / "corpus")
        settings = Settings(corpus_dir=base / "corpus", index_dir=base / "index",
                            embedder="hashing", _env_file=None)
        run_ingest(settings, HashingEmbedder())
        svc = RagService.from_settings(settings)
        svc.warm_up()

        def lease() -> None:
            with svc.index.lease() as snapshot:
                snapshot.generation

        question = Question("How long do I have to get a full refund on an annual plan?", 5)
        timed(lease, 200, 1e6)  # warm
        lease_us = timed(lease, 3000, 1e6)
        retrieve_ms = timed(lambda: svc.retrieve(question), 300, 1e3)
        svc.close()
    print(f"lease and release a snapshot: p50 {lease_us[0]:.1f} us, p95 {lease_us[1]:.1f} us")
    print(f"retrieval of one question:    p50 {retrieve_ms[0]:.2f} ms, p95 {retrieve_ms[1]:.2f} ms")


if __name__ == "__main__":
    main()
