"""The index store. `reader.py` is the seam the service reads through, `records.py` what crosses
it; `sqlite/` is the embedded backend (the default). `open_reader` picks the backend."""
from __future__ import annotations

from ingest.store.reader import IndexReader, Snapshot
from ingest.store.records import (ChunkFilter, ChunkRecord, DocumentRow, IndexParams,
                                  NewDocument, RefusedFile)
from ingest.settings import IngestSettings

__all__ = ["ChunkFilter", "ChunkRecord", "DocumentRow", "IndexParams", "IndexReader",
           "NewDocument", "RefusedFile", "Snapshot", "open_reader"]


def open_reader(settings: IngestSettings, expect: IndexParams | None = None) -> IndexReader:
    """A reader of the index the settings name. `expect`: the parameters the caller's embedder
    and chunking need (a snapshot of an index built otherwise is refused with the fix)."""
    from ingest.store.sqlite.reader import SqliteReader

    return SqliteReader(settings.index_dir, expect)
