"""`python -m tests.bench.bench_extractive`: what the extractive generator's sentence embedding
adds per answer, over the starter questions, in-process with the real model.

Each answered question is retrieved once; then, on the same sources and interleaved (so all
three see the same machine load), generation and the citation check run with the generator
scoring by words alone, with the embedder and an empty cache (a new generator: the first time
its sentences are seen), and with the same generator again (cached). The added milliseconds are
the cold answer minus the words-alone one. Prints p50 / p95 of each.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from app.eval.starter import load_questions
from app.generators.extractive import ExtractiveGenerator
from app.service import Question, RagService
from app.settings import Settings
from ingest.sync import run_ingest
from tests.helpers import ROOT


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def _ms(service: RagService, generator, retrieved) -> float:
    service.generator = generator
    t0 = time.perf_counter()
    service.answer(retrieved)
    return (time.perf_counter() - t0) * 1000


def measure(service: RagService, questions: list[str], top_k: int) -> dict[str, list[float]]:
    embed = lambda texts: service.embedder.embed(texts, urgent=True)  # noqa: E731
    out: dict[str, list[float]] = {"words alone": [], "embedder, cold cache": [],
                                   "embedder, cached": [], "added (cold - words alone)": []}
    for q in questions:
        r = service.retrieve(Question(q, top_k))
        if r.abstained:
            continue
        alone = _ms(service, ExtractiveGenerator(), r)
        gen = ExtractiveGenerator(embed=embed)
        cold = _ms(service, gen, r)
        out["words alone"].append(alone)
        out["embedder, cold cache"].append(cold)
        out["embedder, cached"].append(_ms(service, gen, r))
        out["added (cold - words alone)"].append(cold - alone)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--questions", type=int, default=0, help="at most this many (0: all)")
    args = p.parse_args(argv)
    rows = load_questions()
    questions = [r["q"] for r in rows if r["answerable"]][: args.questions or None]
    with tempfile.TemporaryDirectory(prefix="bench-extractive-") as tmp:
        settings = Settings.load(corpus_dir=ROOT / "corpus", index_dir=Path(tmp) / "index",
                                 generator="extractive")
        service = RagService.from_settings(settings)
        try:
            run_ingest(settings, service.embedder, progress=False)
            service.warm_up()
            results = measure(service, questions, settings.top_k)
        finally:
            service.close()
    print(f"| per answer ({len(results['words alone'])} answered questions) | p50 ms | p95 ms "
          "| mean ms |")
    print("|---|---|---|---|")
    for name, xs in results.items():
        print(f"| {name} | {_pct(xs, .5):.1f} | {_pct(xs, .95):.1f} | "
              f"{statistics.mean(xs):.1f} |")


if __name__ == "__main__":
    main()
