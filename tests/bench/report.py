"""How the benchmarks print what they measured: markdown tables, and the figures as JSON."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Sequence


def print_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print("\n| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")


def write_json(path: Path | None, figures: object) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2, default=str))


def percentiles(values: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(qs[49], 1), "p95": round(qs[94], 1), "p99": round(qs[98], 1)}
