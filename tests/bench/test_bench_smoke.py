"""The benchmarks still run (tiny sizes): a refactor that breaks one is found by make test, not
by the next person to measure."""
from __future__ import annotations

import pytest

from tests.bench import bench_middleware


def test_bench_middleware_runs(capsys):
    bench_middleware.main(["--batches", "2", "--per-batch", "20"])
    table = capsys.readouterr().out
    assert "| + both (as served) |" in table and "share of a 28 ms /ask" in table


def test_bench_ask_times_the_labelled_follow_ups_three_ways():
    from tests.bench.bench_ask import follow_ups

    kinds = follow_ups()
    assert list(kinds) == ["follow-up with history", "its rewrite, no history",
                           "follow-up alone"]
    with_history, rewritten, alone = kinds.values()
    assert len(with_history) == len(rewritten) == len(alone) >= 30
    assert all(b["history"] for b in with_history) and "history" not in rewritten[0]
    assert sum(r["question"] != a["question"] for r, a in zip(rewritten, alone)) >= 30


@pytest.mark.slow  # ingests the starter corpus with the real model
def test_bench_extractive_runs(capsys):
    from tests.bench import bench_extractive

    bench_extractive.main(["--questions", "3"])
    table = capsys.readouterr().out
    assert "| added (cold - words alone) |" in table
