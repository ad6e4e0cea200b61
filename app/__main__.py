"""`python -m app` (`make serve`, `ragfirst serve`): serve the API with uvicorn on
RAG_HOST:RAG_PORT, watching the corpus folder."""
from __future__ import annotations

import argparse
import sys

import uvicorn

from app.http_limits import server_config
from app.main import create_app
from app.settings import Settings
from app.telemetry import configure_logging
from ingest.errors import SettingsError


def main(argv: list[str] | None = None, prog: str = "python -m app") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--host", help="address to listen on (default: RAG_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: RAG_PORT or 8000)")
    p.add_argument("--no-watch", action="store_true",
                   help="do not watch the corpus folder (RAG_WATCH=false)")
    args = p.parse_args(argv)
    overrides = {"host": args.host, "port": args.port, "watch": False if args.no_watch else None}
    try:
        settings = Settings.load(**{k: v for k, v in overrides.items() if v is not None})
        app = create_app(settings)  # reads the collections and keys files
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging()  # JSON lines: one per request, and ours (ingests, the watcher)
    uvicorn.Server(server_config(app, settings)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
