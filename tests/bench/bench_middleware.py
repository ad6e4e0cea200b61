"""`make bench-middleware`: what the per-request telemetry (log line + metrics) and the API-key
check cost (RAG_API_KEY's, and a keys file's), in-process: the same trivial ASGI endpoint called bare and wrapped, many times,
with the log line written to a file as the service writes it to stderr. Reports microseconds
per request (p50 / p95 of batch means) and the share of a 28 ms /ask (the starter p50 of
`make bench-ask`)."""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import statistics
import tempfile
import time
from pathlib import Path

from app.access import AccessMiddleware, KeyRing
from app.metrics import Metrics
from app.telemetry import JsonFormatter, RequestTelemetry

ASK_P50_US = 28_000
KEYS_IN_FILE = 20  # the request's key is the last: every hash is compared anyway


def _keys_file(folder: str, n: int) -> Path:
    """A keys file of `n` keys, the last one `k3y` (what the requests send)."""
    path = Path(folder) / "keys.toml"
    path.write_text("".join(
        f'[[keys]]\nname = "key-{i}"\nsha256 = "{hashlib.sha256(key.encode()).hexdigest()}"\n'
        f'collections = ["*"]\nrole = "read"\n'
        for i, key in enumerate([f"other-{i}" for i in range(n - 1)] + ["k3y"])))
    return path


async def endpoint(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def _noop_receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def _noop_send(message) -> None:
    pass


def scope() -> dict:
    return {"type": "http", "method": "POST", "path": "/ask", "root_path": "",
            "headers": [(b"authorization", b"Bearer k3y"), (b"content-type", b"application/json")]}


async def timed(app, batches: int, per_batch: int) -> list[float]:
    means = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(per_batch):
            await app(scope(), _noop_receive, _noop_send)
        means.append((time.perf_counter() - t0) / per_batch * 1e6)
    return means


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_middleware")
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--per-batch", type=int, default=2000)
    args = p.parse_args(argv)
    with tempfile.NamedTemporaryFile("w", suffix=".log") as log_file:
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("ragfirst.request")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
        metrics = Metrics()
        routes = [("/ask", "/ask")]  # (label, template), as create_app passes them
        keys = KeyRing(None, _keys_file(tempfile.mkdtemp(), KEYS_IN_FILE))
        apps = {
            "bare endpoint": endpoint,
            "+ API key check": AccessMiddleware(endpoint, KeyRing("k3y", None)),
            f"+ keys file check ({KEYS_IN_FILE} keys, a stat per request)":
                AccessMiddleware(endpoint, keys),
            "+ telemetry (log line, metrics)": RequestTelemetry(endpoint, metrics, routes),
            "+ both (as served)": RequestTelemetry(
                AccessMiddleware(endpoint, KeyRing("k3y", None)), metrics, routes),
        }
        results = {}
        for name, app in apps.items():
            asyncio.run(timed(app, 2, 500))  # warm up
            results[name] = asyncio.run(timed(app, args.batches, args.per_batch))
    base = statistics.median(results["bare endpoint"])
    print(f"{args.batches} batches x {args.per_batch} requests; microseconds per request\n")
    print("| stack | p50 | p95 | added (p50) | share of a 28 ms /ask |")
    print("|---|---|---|---|---|")
    for name, means in results.items():
        p50 = statistics.median(means)
        p95 = statistics.quantiles(means, n=20)[-1]
        added = p50 - base
        print(f"| {name} | {p50:.1f} | {p95:.1f} | {added:+.1f} | "
              f"{added / ASK_P50_US * 100:.2f}% |")


if __name__ == "__main__":
    main()
