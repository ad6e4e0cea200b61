"""One generation of the SQLite + FAISS index, read: `SqliteSnapshot` (ingest.store.reader's
Snapshot). `SqliteReader` (reader.py) opens them.

A snapshot starts a read transaction on the SQLite database and keeps it until it is closed, so
every lookup through it (dense search, BM25 search, chunk and document fetches) sees the same
generation even while an ingest commits a new one. A snapshot is meant to be short (a request):
while one is open, SQLite cannot checkpoint its write-ahead log past it.
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ingest.errors import IndexNotFoundError
from ingest.store.bm25 import MAX_ROWS, rarest, terms
from ingest.store.reader import Snapshot
from ingest.store.records import (ChunkFilter, ChunkRecord, DocumentRow, IndexParams,
                                  RefusedFile, check_params)
from ingest.store.sqlite.dense import DenseParams, load_dense, search
from ingest.store.sqlite.faults import damaged, is_damage
from ingest.store.sqlite.lexical import LexicalIndex
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
    """One committed generation, read inside one read transaction: open it, read, close it
    (a request's lease). It holds no transaction once closed, so the write-ahead log can be
    checkpointed and reset between requests; what a later snapshot of the same commit can
    reuse (the FAISS index, the counts) is kept on the closed object."""

    def __init__(self, conn: sqlite3.Connection, index_dir: Path, meta: dict[str, str],
                 dense, chunk_count: int, document_count: int,
                 release: Callable[[sqlite3.Connection], None] | None = None,
                 on_damage: Callable[[], None] | None = None,
                 dense_params: DenseParams = DenseParams()) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._release = release
        self._on_damage = on_damage
        self._lock = threading.Lock()
        self.index_dir = index_dir
        self.meta = meta
        self.generation = int(meta["generation"])
        self.revision = revision_of(meta)
        self.commit = meta["commit"]
        self.index_id = meta.get("index_id") or meta["commit"]
        self.dense = dense
        self.dense_params = dense_params
        self.chunk_count = chunk_count
        self.document_count = document_count
        # This commit's in-memory BM25 index when the reader has it ready; FTS5 otherwise.
        self.lexical: LexicalIndex | None = None

    @property
    def lexical_in_memory(self) -> bool:
        return self.lexical is not None

    @classmethod
    def open(cls, index_dir: Path, expect: IndexParams | None = None, *,
             save_dense: bool | Callable[[], bool] = True, previous: Snapshot | None = None,
             conn: sqlite3.Connection | None = None,
             release: Callable[[sqlite3.Connection], None] | None = None,
             on_damage: Callable[[], None] | None = None,
             dense_params: DenseParams = DenseParams()) -> "SqliteSnapshot":
        """Snapshot the latest committed generation. `save_dense=False` never writes to the
        index folder (a missing FAISS file is rebuilt in memory only); a callable is asked
        only when a FAISS index must be loaded. `previous`: a snapshot
        whose FAISS index and counts are reused if the content has not changed since (only
        the list of refused files may have). `conn`: a connection to use (a reader's pool),
        handed to `release` when the snapshot closes; by default one of its own. `on_damage`
        is called when a read finds the file damaged (the reader then checks it again).
        `dense_params`: which FAISS index to load (exact or HNSW, by the chunk count)."""
        db = index_dir / DB_NAME
        if conn is None:
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
            if isinstance(previous, SqliteSnapshot) and previous.commit == meta["commit"]:
                dense, chunks, docs = previous.dense, previous.chunk_count, previous.document_count
            else:
                chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
                docs = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
                dense = load_dense(conn, index_dir, meta["commit"], int(meta["dim"]), chunks,
                                   save=save_dense() if callable(save_dense) else save_dense,
                                   params=dense_params)
        except BaseException as exc:
            _end(conn, release)
            if is_damage(exc):
                raise damaged(index_dir, exc) from exc
            if isinstance(exc, sqlite3.OperationalError):  # no tables yet: being created
                raise IndexNotFoundError(f"the index in {index_dir} is not ready ({exc}): "
                                         "an ingest may be creating it") from exc
            raise
        return cls(conn, index_dir, meta, dense, chunks, docs, release, on_damage, dense_params)

    def close(self) -> None:
        """End the read transaction (and give the connection back). Reading after this is an
        error; the attributes stay."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            _end(conn, self._release)

    def __enter__(self) -> "SqliteSnapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._lock:
            if self._conn is None:
                raise SnapshotClosed("this snapshot is closed: open (or lease) a new one")
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as exc:
                if is_damage(exc):
                    if self._on_damage is not None:
                        self._on_damage()
                    raise damaged(self.index_dir, exc) from exc
                raise

    def search_dense(self, vector: np.ndarray, k: int,
                     where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        if self.chunk_count == 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        allowed = None
        if where is not None:
            allowed = np.array(self.chunk_ids(where), dtype=np.int64)
            if allowed.size == 0:
                return []
        return search(self.dense, query, k, allowed, self.dense_params)

    def search_lexical(self, query: str, k: int, where: ChunkFilter | None = None,
                       max_rows: int = MAX_ROWS) -> list[tuple[int, float]]:
        """FTS5 scores every matching row, so a query of common words over a big index costs
        tens of milliseconds. When the query would match more than `max_rows` rows, only
        its rarest words (together matching at most `max_rows`, at least one word) are
        searched: Lucene's "common terms" idea. Common words weigh little in BM25 anyway.
        The in-memory index (lexical.py), when ready, ranks the same way in far less time."""
        if self.lexical is not None:
            allowed = None if where is None else np.array(self.chunk_ids(where), dtype=np.int64)
            return self.lexical.search(query, k, allowed, max_rows)
        words: dict[str, str] = {}  # each distinct term (bm25.terms), as FTS5 is asked for it
        for word in dict.fromkeys(t.lower() for t in _TERM.findall(query)):
            key = " ".join(terms(word))
            if key:
                words.setdefault(key, '"' + word.replace('"', '""') + '"')
        if not words:
            return []
        # the cut the other stores make (bm25.rarest), on FTS5's counts
        dfs = {key: self._matches(q) for key, q in words.items()} if len(words) > 1 else {
            key: 1 for key in words}
        quoted = [words[key] for key in rarest(dfs, max_rows)]
        if not quoted:
            return []
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
        if self.lexical is not None:
            return min(self.lexical.doc_freq(word), cap)
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


class SnapshotClosed(sqlite3.ProgrammingError):
    """A read on a snapshot after its close()."""


def _end(conn: sqlite3.Connection, release: Callable[[sqlite3.Connection], None] | None) -> None:
    """End the connection's read transaction; give it back to its pool, or close it."""
    try:
        if conn.in_transaction:
            conn.rollback()
    except sqlite3.Error:
        conn.close()
        return
    if release is not None:
        release(conn)
    else:
        conn.close()
