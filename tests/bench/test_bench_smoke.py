"""The benchmarks still run (tiny sizes): a refactor that breaks one is found by make test, not
by the next person to measure."""
from __future__ import annotations

from tests.bench import bench_middleware


def test_bench_middleware_runs(capsys):
    bench_middleware.main(["--batches", "2", "--per-batch", "20"])
    table = capsys.readouterr().out
    assert "| + both (as served) |" in table and "share of a 28 ms /ask" in table
