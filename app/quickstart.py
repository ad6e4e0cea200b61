"""`make run`: the whole path on embedded defaults. Ingest the corpus, start the service,
ask it a sample question over HTTP and print the answer, then keep serving until Ctrl-C
(`--once` stops after the question)."""
from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

import httpx
import uvicorn

from app.answer import Answer
from app.ask import auth_headers, format_answer
from app.http_limits import server_config
from app.main import create_app
from app.settings import Settings
from app.telemetry import configure_logging
from ingest.cli import format_report
from ingest.errors import IngestError
from ingest.sync import run_ingest

SAMPLE = "How long do I have to get a full refund on an annual Kestrelbook plan?"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.quickstart", description=__doc__)
    p.add_argument("--question", default=SAMPLE)
    p.add_argument("--once", action="store_true", help="stop after answering")
    args = p.parse_args(argv)
    try:
        settings = Settings.load()
        report = run_ingest(settings)
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report, settings.corpus_dir, settings.index_name), "\n")

    # Quiet while the sample question is answered; then one JSON line per request (below).
    configure_logging(logging.WARNING)
    server = uvicorn.Server(server_config(create_app(settings), settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://{settings.host}:{settings.port}"
    while not server.started:
        if not thread.is_alive():
            print(f"error: the service could not start on {url} (port in use? set RAG_PORT)",
                  file=sys.stderr)
            return 2
        time.sleep(0.1)
    r = httpx.post(f"{url}/ask", json={"question": args.question},
                   headers=auth_headers(settings), timeout=120)
    print(f"Q: {args.question}\n")
    print(format_answer(Answer.model_validate(r.json())) if r.status_code == 200
          else f"HTTP {r.status_code}: {r.text}")
    if args.once:
        server.should_exit = True
        thread.join()
        return 0
    print(f"\nServing on {url} (Ctrl-C to stop). Try:\n"
          f"  curl -s {url}/ask -H 'content-type: application/json' "
          "-d '{\"question\": \"What does the Business plan cost?\"}'\n"
          f"  make ask Q=\"What does the Business plan cost?\"\n"
          f"  or open {url}/ in a browser.", flush=True)
    logging.getLogger().setLevel(logging.INFO)
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
