"""/metrics in the Prometheus text format (version 0.0.4), kept in-process: counters and
histograms the requests update, and gauges read from the index and the ingests at scrape time.

Small on purpose: a counter and a histogram with labels, a lock each, and a renderer."""
from __future__ import annotations

import math
import threading
from typing import Callable, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: from a 5 ms lexical answer to a minute-long CPU LLM.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labelnames = name, help, labels
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(labels, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        with self._lock:
            for labels, v in sorted(self._values.items()):
                yield f"{self.name}{_labels(self.labelnames, labels)} {_num(v)}"


class Histogram:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = (),
                 buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.labelnames = name, help, labels
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        # per label set: [count per bucket (not cumulative)..., sum]
        self._series: dict[tuple[str, ...], list[float]] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        i = next(i for i, b in enumerate(self.buckets) if value <= b)
        with self._lock:
            series = self._series.setdefault(labels, [0.0] * (len(self.buckets) + 1))
            series[i] += 1
            series[-1] += value

    def count(self, *labels: str) -> int:
        with self._lock:
            return int(sum(self._series.get(labels, [0.0])[:-1]))

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        with self._lock:
            for labels, series in sorted(self._series.items()):
                cumulative = 0.0
                for bound, n in zip(self.buckets, series):
                    cumulative += n
                    le = f'le="{_num(bound)}"'
                    yield (f"{self.name}_bucket{_labels(self.labelnames, labels, le)} "
                           f"{_num(cumulative)}")
                yield f"{self.name}_sum{_labels(self.labelnames, labels)} {_num(series[-1])}"
                yield f"{self.name}_count{_labels(self.labelnames, labels)} {_num(cumulative)}"


class Metrics:
    """Everything /metrics shows. `gauges` is called at each scrape and returns
    (name, type, help, value) for what is read rather than counted (index size, ingests)."""

    def __init__(self, gauges: Callable[[], list[tuple[str, str, str, float]]]) -> None:
        self.requests = Counter("ragfirst_http_requests_total",
                                "HTTP requests by route, method and status",
                                ("route", "method", "status"))
        self.latency = Histogram("ragfirst_http_request_duration_seconds",
                                 "HTTP request time by route, until the last byte is sent",
                                 ("route",))
        self.retrieval = Histogram("ragfirst_retrieval_seconds",
                                   "question embedding and retrieval time per answer (abstentions "
                                   "included)")
        self.generation = Histogram("ragfirst_generation_seconds",
                                    "generation time per answer, by generator (abstentions: "
                                    "none)", ("generator",))
        self.answers = Counter("ragfirst_answers_total",
                               "answers by outcome (answered or abstained)", ("outcome",))
        self.unsupported = Counter("ragfirst_unsupported_sentences_total",
                                   "answer sentences no cited passage supports")
        for outcome in ("answered", "abstained"):  # 0, not absent, before the first answer
            self.answers.inc(outcome, amount=0)
        self.unsupported.inc(amount=0)
        self._gauges = gauges
        self._counted = (self.requests, self.latency, self.retrieval, self.generation,
                         self.answers, self.unsupported)

    def observe_answer(self, body: dict) -> None:
        """Record one /ask-shaped response body."""
        t = body["timings_ms"]
        self.retrieval.observe((t["embed"] + t["retrieve"]) / 1000)
        outcome = "abstained" if body["abstained"] else "answered"
        self.answers.inc(outcome)
        if not body["abstained"]:
            self.generation.observe(t["generate"] / 1000, body["generator"])
        if body["unsupported"]:
            self.unsupported.inc(amount=len(body["unsupported"]))

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._counted:
            lines.extend(metric.render())
        for name, kind, help, value in self._gauges():
            lines += [f"# HELP {name} {help}", f"# TYPE {name} {kind}", f"{name} {_num(value)}"]
        return "\n".join(lines) + "\n"
