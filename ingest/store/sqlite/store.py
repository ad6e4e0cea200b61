"""The index's source of truth: one SQLite database (WAL mode).

Tables: `documents` (path, content hash, extracted text), `chunks` (spans, heading path, page,
text, a key into `vectors`), `vectors` (float32 blobs keyed by model + text hash, so identical
text is embedded once and a crashed run's work is reused), `chunks_fts` (FTS5, BM25 ranking,
kept in step with `chunks` by triggers), `failures` (files refused in the last run), and `meta`
(model id, chunking parameters, vector dimension, generation, `commit`: a random id per
content change that names the FAISS file derived from it, and `revision`: a random id that
changes whenever anything a reader can see changes, the refused files included).

Every run's changes land in ONE transaction (`commit_run`), so a reader sees the previous
generation or the new one, never a mix; a SIGKILL at any instant leaves the last commit intact.
Only `put_vectors` commits earlier: it adds vectors no reader looks up until a run commits.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ingest.errors import IndexMismatchError
from ingest.store.export import no_index
from ingest.store.records import (DocumentRow, IndexParams, NewDocument, StoredBatch, StoredIndex,
                                  check_params)
from ingest.store.sqlite.dense import (DenseParams, build_dense, dense_path, remove_stale,
                                      write_dense)
from ingest.store.sqlite.export import read_batches, read_stored
from ingest.store.sqlite.faults import damaged, is_damage

log = logging.getLogger("ragfirst.ingest")

SCHEMA_VERSION = 1
DB_NAME = "index.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
    ingested_at REAL NOT NULL, generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id INTEGER NOT NULL REFERENCES documents(id),
    ordinal INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    heading TEXT NOT NULL, page INTEGER, tokens INTEGER NOT NULL, text TEXT NOT NULL,
    vec_key TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_vec ON chunks(vec_key);
CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failures (
    path TEXT PRIMARY KEY, reason TEXT NOT NULL, size INTEGER);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END;
"""


DOCUMENTS_SQL = ("SELECT d.path, d.sha256, d.size, d.kind, COUNT(c.id), d.ingested_at "
                 "FROM documents d LEFT JOIN chunks c ON c.doc_id = d.id GROUP BY d.id ORDER BY d.path")


# After a checkpoint resets the write-ahead log, SQLite truncates it to this size: a big commit
# does not keep its space for ever.
WAL_KEEP_BYTES = 4 * 1024 * 1024
BUSY_TIMEOUT_S = 60  # how long a write waits for another writer (another ingest process)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
    return conn


def move_aside(index_dir: Path) -> Path:
    """Move a damaged database (and its log) out of the way, never deleting it: it may hold
    what someone wants to recover. Returns where it went."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target, n = index_dir / f"{DB_NAME}.damaged-{stamp}", 1
    while any(target.with_name(target.name + s).exists() for s in ("", "-wal", "-shm")):
        n += 1  # never over an earlier one
        target = index_dir / f"{DB_NAME}.damaged-{stamp}-{n}"
    # The log first: a crash between two renames must not leave a log beside a new database
    # (SQLite would replay it there).
    for suffix in ("-shm", "-wal", ""):
        part = index_dir / (DB_NAME + suffix)
        if part.exists():
            os.replace(part, target.with_name(target.name + suffix))
    return target


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta"))


def _write_meta(conn: sqlite3.Connection, values: dict[str, str]) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", values.items())


class SqliteStore:
    """Writer side of the index. One writer at a time (the sync module holds a file lock).
    `params` None opens the index as it is, with its own parameters (a copy's source)."""

    def __init__(self, index_dir: Path, params: IndexParams | None, *,
                 rebuild: bool = False, dense: DenseParams = DenseParams()) -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        self.dense = dense  # which FAISS index `publish` derives
        self.index_dir = index_dir
        self.params = params
        self.rebuild = rebuild
        self.moved_aside: Path | None = None  # where a damaged database went (a rebuild)
        try:
            if rebuild:
                self._check_whole()
            self.conn = self._open()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            if not rebuild:
                raise damaged(index_dir, exc) from exc
            self.moved_aside = move_aside(index_dir)  # a rebuild starts from nothing
            self.conn = self._open()

    def _check_whole(self) -> None:
        """Before a rebuild writes to it: is the file whole? Checked on a plain connection,
        so a damaged file is moved aside as it was found."""
        path = self.index_dir / DB_NAME
        if not path.exists():
            return
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
        try:
            if conn.execute("PRAGMA quick_check(1)").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("database disk image is malformed")
        finally:
            conn.close()

    def _open(self) -> sqlite3.Connection:
        conn = connect(self.index_dir / DB_NAME)
        try:
            conn.executescript(_SCHEMA)
            meta = read_meta(conn)
            if self.params is None:  # the index as it is
                if "model_id" not in meta:
                    raise no_index(str(self.index_dir))
                self.params = IndexParams.from_meta(meta)
            if "model_id" not in meta:  # a new index: what it is built with, and its name
                with conn:
                    conn.execute("BEGIN IMMEDIATE")
                    _write_meta(conn, {"schema": str(SCHEMA_VERSION), "generation": "0",
                                       "commit": "none", "index_id": secrets.token_hex(8),
                                       **self.params.as_meta()})
            else:
                if "index_id" not in meta:  # from before ids: its readers named it by commit
                    with conn:
                        conn.execute("BEGIN IMMEDIATE")
                        _write_meta(conn, {"index_id": meta["commit"]})
                if not self.rebuild:  # a rebuild rewrites the parameters in its own commit
                    check_params(meta, self.params, str(self.index_dir))
        except BaseException:
            conn.close()
            raise
        return conn

    def checkpoint(self) -> None:
        """Move the log into the database and truncate it, when no reader is in the way (a
        reader's transaction lasts one request): after a run, and after a failed one, so that
        freeing disk space is enough to recover from a full disk."""
        # Without waiting: TRUNCATE would call the busy handler until every reader
        # is done, and a run must not wait on a client. A busy checkpoint still moves what it
        # can; the log is reset (and cut to WAL_KEEP_BYTES) by a later write or checkpoint.
        self.conn.execute("PRAGMA busy_timeout=0")
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            pass  # the disk is still full: the next run tries again
        finally:
            self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")

    def close(self) -> None:
        self.conn.close()

    def _write_meta(self, values: dict[str, str]) -> None:
        _write_meta(self.conn, values)

    @property
    def meta(self) -> dict[str, str]:
        return read_meta(self.conn)

    @property
    def generation(self) -> int:
        return int(self.meta["generation"])

    def documents(self) -> dict[str, DocumentRow]:
        return {r[0]: DocumentRow(*r) for r in self.conn.execute(DOCUMENTS_SQL)}

    def missing_vectors(self, keys: Iterable[str]) -> list[str]:
        """Keys (in first-seen order, without repeats) that have no stored vector yet."""
        wanted = list(dict.fromkeys(keys))
        have: set[str] = set()
        for i in range(0, len(wanted), 500):
            batch = wanted[i:i + 500]
            marks = ",".join("?" * len(batch))
            have.update(k for (k,) in self.conn.execute(
                f"SELECT key FROM vectors WHERE key IN ({marks})", batch))
        return [k for k in wanted if k not in have]

    def put_vectors(self, keys: Sequence[str], vectors: np.ndarray, *,
                    replace: bool = False) -> None:
        """Store embedded vectors in their own small commit (a checkpoint a rerun can reuse).
        `replace` overwrites vectors already stored under the same keys (a rebuild)."""
        if vectors.ndim != 2 or vectors.shape[0] != len(keys):
            raise ValueError(f"expected {len(keys)} vectors, got an array of {vectors.shape}")
        blobs = [np.asarray(v, dtype="<f4").tobytes() for v in vectors]
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
            self.conn.executemany(f"{verb} INTO vectors(key, vector) VALUES (?, ?)",
                                  zip(keys, blobs))

    def stored(self) -> StoredIndex:
        return read_stored(self.conn, str(self.index_dir))

    def stored_batches(self, chunks_per_batch: int = 1000) -> Iterator[StoredBatch]:
        return read_batches(self.conn, str(self.index_dir), chunks_per_batch)

    def commit_run(self, upserts: Sequence[NewDocument], deletes: Sequence[str],
                   failures: Sequence[tuple[str, str, int | None]],
                   model_dim: Callable[[], int],
                   before_commit: Callable[[], None] = lambda: None, *,
                   copy_of: StoredIndex | None = None) -> tuple[int, str]:
        """Apply one run atomically. Returns the (generation, commit id) readers now see.

        `deletes` are paths to drop; `upserts` replace a path's previous version.
        `failures` replaces the list of refused files. The generation moves only when the
        indexed content changed (or on a rebuild). The vector dimension recorded in meta is
        read off the stored vectors, which must all have one size; `model_dim` is asked only
        when there are none (an empty index). `copy_of`: the commit makes this index a copy
        of that one, with its generation and index_id.
        """
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            meta = read_meta(conn)
            generation, commit = int(meta["generation"]), meta["commit"]
            if upserts or deletes or self.rebuild or copy_of:
                generation, commit = generation + 1, secrets.token_hex(8)
            if copy_of:
                generation = copy_of.generation
            self._write_documents(upserts, [*deletes, *(d.path for d in upserts)], generation)
            dim = self._vector_dim() or int(meta.get("dim") or model_dim())
            conn.execute("DELETE FROM vectors WHERE key NOT IN (SELECT vec_key FROM chunks)")
            failures_changed = self._replace_failures(failures)
            values = {"generation": str(generation), "commit": commit, "dim": str(dim)}
            if copy_of:
                values["index_id"] = copy_of.index_id
            if commit != meta["commit"] or failures_changed:
                values["revision"] = secrets.token_hex(8)  # what readers see has changed
            self._write_meta(values)
            before_commit()
        return generation, commit

    def _write_documents(self, upserts: Sequence[NewDocument], drop: Sequence[str],
                         generation: int) -> None:
        """Drop the paths' old versions (everything, on a rebuild) and insert the new ones."""
        conn, now = self.conn, time.time()
        if self.rebuild:
            conn.execute("DELETE FROM chunks")
            conn.execute("DELETE FROM documents")
            self._write_meta(self.params.as_meta())
        for path in drop:
            row = conn.execute("SELECT id FROM documents WHERE path = ?", (path,)).fetchone()
            if row:
                conn.execute("DELETE FROM chunks WHERE doc_id = ?", row)
                conn.execute("DELETE FROM documents WHERE id = ?", row)
        for doc in upserts:
            doc_id = conn.execute(
                "INSERT INTO documents(path, sha256, size, kind, text, ingested_at, generation)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (doc.path, doc.sha256, doc.size, doc.kind, doc.text,
                 now if doc.ingested_at is None else doc.ingested_at, generation),
            ).lastrowid
            conn.executemany(
                'INSERT INTO chunks(doc_id, ordinal, start, "end", heading, page, tokens, text,'
                " vec_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(doc_id, c.ordinal, c.start, c.end, json.dumps(list(c.heading)), c.page,
                  c.tokens, c.text, key) for c, key in zip(doc.chunks, doc.vec_keys)])

    def _vector_dim(self) -> int | None:
        """The size of every chunk's vector (None: no chunks). Refuses chunks without a vector
        and vectors of mixed sizes."""
        missing = self.conn.execute(
            "SELECT COUNT(*) FROM chunks c LEFT JOIN vectors v ON v.key = c.vec_key"
            " WHERE v.key IS NULL").fetchone()[0]
        if missing:
            raise RuntimeError(f"{missing} chunks have no vector; refusing to commit")
        sizes = [n // 4 for (n,) in self.conn.execute(
            "SELECT DISTINCT length(v.vector) FROM chunks c JOIN vectors v"
            " ON v.key = c.vec_key")]
        if len(sizes) > 1:
            raise IndexMismatchError(
                f"the model {self.params.model_id!r} gave vectors of sizes {sizes}: it "
                "changed under the same name. Rebuild with `python -m ingest --rebuild`.")
        return sizes[0] if sizes else None

    def _replace_failures(self, failures: Sequence[tuple[str, str, int | None]]) -> bool:
        """Replace the refused files; True when the list changed."""
        old = self.conn.execute("SELECT path, reason, size FROM failures ORDER BY path").fetchall()
        self.conn.execute("DELETE FROM failures")
        self.conn.executemany("INSERT INTO failures(path, reason, size) VALUES (?, ?, ?)",
                              failures)
        return old != sorted(map(tuple, failures))

    def publish(self, commit: str) -> None:
        """Derive the FAISS file of a commit (if it is not there yet) and remove older ones.
        Readers rebuild a missing file themselves, so a crash before this costs them a rebuild,
        never a wrong answer."""
        with self.conn:  # one read transaction: the file matches the commit just made
            self.conn.execute("BEGIN")
            chunks = self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            kind = self.dense.kind(chunks)
            target = dense_path(self.index_dir, commit, kind)
            dense = None if target.exists() else build_dense(self.conn, int(self.meta["dim"]),
                                                             kind, self.dense)
        if dense is not None:
            try:
                write_dense(dense, target)
            except OSError as exc:  # the commit stands: readers build the index in memory
                log.warning("the FAISS file of commit %s could not be written (%s); readers "
                            "build it in memory until a run writes it", commit, exc)
                return
        remove_stale(self.index_dir, keep=target)
