"""The SQLite store opened for one run: the file lock held, the store's errors as ours, the log
checkpointed after the run (also a failed one: freed disk space is then enough to recover)."""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator

from ingest.settings import IngestSettings
from ingest.store.export import no_index
from ingest.store.records import IndexParams
from ingest.store.sqlite.dense import DenseParams
from ingest.store.sqlite.faults import storage_error
from ingest.store.sqlite.lock import ingest_lock
from ingest.store.sqlite.store import DB_NAME, SqliteStore


@contextmanager
def sqlite_store(settings: IngestSettings, params: IndexParams | None, *,
                 rebuild: bool = False) -> Iterator[SqliteStore]:
    if params is None and not (settings.index_dir / DB_NAME).is_file():  # nothing made there
        raise no_index(str(settings.index_dir))
    try:
        with ingest_lock(settings.index_dir):
            store = SqliteStore(settings.index_dir, params, rebuild=rebuild,
                                dense=DenseParams.of(settings))
            try:
                yield store
            finally:
                store.checkpoint()
                store.close()
    except (sqlite3.Error, OSError) as exc:
        fault = storage_error(exc)
        if fault is None:
            raise
        raise fault from exc
