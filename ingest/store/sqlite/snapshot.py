"""Reading the SQLite + FAISS index: `SqliteSnapshot` (one generation) and `SqliteReader` (the
latest revision, cheaply, and snapshots of it). They implement ingest.store.reader's seam.

A snapshot starts a read transaction on the SQLite database and keeps it open, so every lookup
through it (dense search, BM25 search, chunk and document fetches) sees the same generation even
while an ingest commits a new one. While a snapshot is open SQLite cannot checkpoint its
write-ahead log past it, so long-lived readers should open a new one after each commit.
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np

from ingest.errors import IndexNotFoundError
from ingest.store.reader import Snapshot
from ingest.store.records import (ChunkFilter, ChunkRecord, DocumentRow, IndexParams,
                                  RefusedFile, check_params)
from ingest.store.sqlite.dense import dense_path, load_dense
from ingest.store.sqlite.lock import ingest_running
from ingest.store.sqlite.store import DB_NAME, DOCUMENTS_SQL, connect, read_meta

_TERM = re.compile(r"\w+", re.UNICODE)


def _where_sql(where: ChunkFilter) -> tuple[str, list]:
    """A condition on the documents table `d`, and its arguments."""
    parts, args = [], []
    if where.path_glob:
        parts.append("d.path GLOB ?")
        args.append(where.path_glob)
    if where.kinds:
        parts.append(f"d.kind IN ({','.join('?' * len(where.kinds))})")
        args.extend(where.kinds)
    return (" AND ".join(parts) or "1"), args


def revision_of(meta: dict[str, str]) -> str:
    """What identifies a committed state (indexes from before `revision` have only `commit`)."""
    return meta.get("revision") or meta["commit"]


class SqliteSnapshot:
    def __init__(self, conn: sqlite3.Connection, index_dir: Path, meta: dict[str, str],
                 dense, chunk_count: int, document_count: int) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.index_dir = index_dir
        self.meta = meta
        self.generation = int(meta["generation"])
        self.revision = revision_of(meta)
        self.commit = meta["commit"]
        self.dense = dense
        self.chunk_count = chunk_count
        self.document_count = document_count

    @classmethod
    def open(cls, index_dir: Path, expect: IndexParams | None = None, *,
             save_dense: bool = True, previous: Snapshot | None = None) -> "SqliteSnapshot":
        """Snapshot the latest committed generation. `save_dense=False` never writes to the
        index folder (a missing FAISS file is rebuilt in memory only). `previous`: a snapshot
        whose FAISS index is reused if the content has not changed since (only the list of
        refused files has)."""
        db = index_dir / DB_NAME
        if not db.exists():
            raise IndexNotFoundError(
                f"no index in {index_dir}: run `make ingest` (or `python -m ingest`) first")
        conn = connect(db)
        try:
            conn.execute("BEGIN")  # deferred: the first read below fixes the snapshot
            meta = read_meta(conn)
            if "dim" not in meta:  # created, but no run has committed yet
                raise IndexNotFoundError(f"the index in {index_dir} is not initialised: "
                                         "run `make ingest` first")
            if expect is not None:
                check_params(meta, expect, str(index_dir))
            chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            docs = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            if isinstance(previous, SqliteSnapshot) and previous.commit == meta["commit"]:
                dense = previous.dense
            else:
                dense = load_dense(conn, index_dir, meta["commit"], int(meta["dim"]), chunks,
                                   save=save_dense)
        except BaseException:
            conn.close()
            raise
        return cls(conn, index_dir, meta, dense, chunks, docs)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "SqliteSnapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def search_dense(self, vector: np.ndarray, k: int,
                     where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        if self.chunk_count == 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        params = None
        if where is not None:
            allowed = np.array(self.chunk_ids(where), dtype=np.int64)
            if allowed.size == 0:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        scores, ids = self.dense.search(query, min(k, self.chunk_count), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    def search_lexical(self, query: str, k: int, where: ChunkFilter | None = None,
                       max_rows: int = 10_000) -> list[tuple[int, float]]:
        """FTS5 scores every matching row, so a query of common words over a big index costs
        tens of milliseconds. When the query would match more than `max_rows` rows, only
        its rarest words (together matching at most `max_rows`, at least one word) are
        searched: Lucene's "common terms" idea. Common words weigh little in BM25 anyway."""
        terms = list(dict.fromkeys(t.lower() for t in _TERM.findall(query)))
        if not terms:
            return []
        quoted = ['"' + t.replace('"', '""') + '"' for t in terms]
        if len(quoted) > 1 and self._matches(" OR ".join(quoted)) > max_rows:
            by_df = sorted((self._matches(q), q) for q in quoted)
            kept, rows = [], 0
            for df, q in by_df:
                if kept and rows + df > max_rows:
                    break
                kept.append(q)
                rows += df
            quoted = kept
        match = " OR ".join(quoted)
        if where is None:
            rows = self._query("SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts"
                               " MATCH ? ORDER BY bm25(chunks_fts) LIMIT ?", (match, k))
        else:
            cond, args = _where_sql(where)
            rows = self._query(
                "SELECT f.rowid, -bm25(chunks_fts) FROM chunks_fts f JOIN chunks c ON c.id ="
                f" f.rowid JOIN documents d ON d.id = c.doc_id WHERE chunks_fts MATCH ? AND {cond}"
                " ORDER BY bm25(chunks_fts) LIMIT ?", (match, *args, k))
        return [(int(r), float(s)) for r, s in rows]

    def doc_freq(self, word: str) -> int:
        """Counted up to a cap that keeps common words cheap at any index size; above it the
        weight is small anyway."""
        cap = max(1000, self.chunk_count // 20)
        return self._query("SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts "
                           "MATCH ? LIMIT ?)", ('"' + word.replace('"', '""') + '"', cap))[0][0]

    def _matches(self, match: str) -> int:
        """Rows an FTS5 query matches (walks the posting lists without scoring)."""
        return self._query("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
                           (match,))[0][0]

    def similarities(self, vector: np.ndarray, ids: Sequence[int]) -> list[float]:
        if not ids:
            return []
        vecs = np.vstack([self.dense.reconstruct(int(i)) for i in ids])
        return [float(x) for x in vecs @ np.asarray(vector, dtype=np.float32).ravel()]

    def document_span(self, path: str, start: int, end: int) -> str:
        rows = self._query("SELECT substr(text, ?, ?) FROM documents WHERE path = ?",
                           (start + 1, end - start, path))
        return rows[0][0] if rows else ""

    def chunks(self, ids: Sequence[int]) -> list[ChunkRecord]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._query(
            'SELECT c.id, d.path, c.ordinal, c.start, c."end", c.heading, c.page, c.text '
            f"FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
            list(ids))
        by_id = {r[0]: ChunkRecord(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])),
                                   r[6], r[7]) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def document_text(self, path: str) -> str | None:
        rows = self._query("SELECT text FROM documents WHERE path = ?", (path,))
        return rows[0][0] if rows else None

    def documents(self) -> list[DocumentRow]:
        return [DocumentRow(*r) for r in self._query(DOCUMENTS_SQL)]

    def chunk_ids(self, where: ChunkFilter | None = None) -> list[int]:
        if where is None:
            return [i for (i,) in self._query("SELECT id FROM chunks ORDER BY id")]
        cond, args = _where_sql(where)
        return [i for (i,) in self._query(
            f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {cond}"
            " ORDER BY c.id", args)]

    def failures(self) -> list[RefusedFile]:
        return [RefusedFile(*r) for r in self._query(
            "SELECT path, reason, size FROM failures ORDER BY path")]


class SqliteReader:
    """The index in `index_dir`, read. `latest()` costs one `PRAGMA data_version` when nothing
    was written since the last call; `meta` is read only when something was. A database file
    replaced under us (the index deleted and rebuilt) is noticed by its inode."""

    def __init__(self, index_dir: Path, expect: IndexParams | None = None, *,
                 save_dense: bool = True) -> None:
        # A service searches one query at a time: an exhaustive scan gains nothing from
        # OpenMP threads (measured 8 ms with one thread against 19-40 ms with two, at 100,000
        # chunks). Process-wide, as FAISS has it.
        faiss.omp_set_num_threads(1)
        self.index_dir = index_dir
        self.expect = expect
        self.save_dense = save_dense
        self._lock = threading.Lock()
        self._probe: sqlite3.Connection | None = None
        self._probe_inode: tuple[int, int] | None = None
        self._seen_version: int | None = None
        self._seen: dict[str, str] | None = None

    def _meta(self) -> dict[str, str] | None:
        """The latest committed `commit` and `revision` (caller holds the lock)."""
        db = self.index_dir / DB_NAME
        try:
            inode = (st := db.stat()).st_dev, st.st_ino
        except FileNotFoundError:
            return None
        if self._probe is None or inode != self._probe_inode:
            if self._probe is not None:
                self._probe.close()
            self._probe = sqlite3.connect(db, check_same_thread=False)
            self._probe_inode, self._seen_version = inode, None
        version = self._probe.execute("PRAGMA data_version").fetchone()[0]
        if version != self._seen_version or self._seen is None:
            self._seen_version, self._seen = version, dict(self._probe.execute(
                "SELECT key, value FROM meta WHERE key IN ('commit', 'revision')")) or None
        return self._seen

    def latest(self) -> str | None:
        with self._lock:
            try:
                meta = self._meta()
            except sqlite3.Error:
                return None  # being created right now
        if meta is None or "commit" not in meta:
            return None
        if (not dense_path(self.index_dir, meta["commit"]).exists()
                and ingest_running(self.index_dir)):
            # Committed, and its FAISS file is being written right now: a snapshot opened now
            # would rebuild it; the previous generation serves a moment longer instead.
            return None
        return revision_of(meta)

    def open(self, previous: Snapshot | None = None) -> SqliteSnapshot:
        return SqliteSnapshot.open(self.index_dir, self.expect, save_dense=self.save_dense,
                                   previous=previous)

    def close(self) -> None:
        with self._lock:
            if self._probe is not None:
                self._probe.close()
            self._probe = None

    def __enter__(self) -> "SqliteReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
