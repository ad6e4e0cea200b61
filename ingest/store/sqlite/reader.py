"""The SQLite + FAISS index, read: `SqliteReader` (ingest.store.reader's IndexReader).

Each `open()` is a new read transaction on a pooled connection, so no transaction outlives the
request that reads through it: the write-ahead log is checkpointed and reset between requests
instead of growing for as long as the service runs. What does not change between snapshots of
one commit (the FAISS index, the counts) is reused, so an open costs one small query.

A database file replaced under us (the index deleted and rebuilt) is noticed by its inode: the
pool is emptied, and the new file is checked once (`PRAGMA quick_check`) before it is read.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import faiss

from ingest.errors import IndexDamagedError, IndexNotFoundError
from ingest.store.reader import Snapshot
from ingest.store.records import IndexParams
from ingest.store.sqlite.dense import DenseParams, dense_path
from ingest.store.sqlite.lock import ingest_running
from ingest.store.sqlite.faults import damaged, is_damage
from ingest.store.sqlite.lexical import LexicalBuilder
from ingest.store.sqlite.snapshot import SqliteSnapshot
from ingest.store.sqlite.store import DB_NAME, connect

POOL_SIZE = 8  # idle connections kept; more concurrent requests open (and close) their own


def _state(st) -> tuple[int, int, int, int]:
    """A database file as it is: which file (device, inode), its size and its last change."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class SqliteReader:
    def __init__(self, index_dir: Path, expect: IndexParams | None = None, *,
                 save_dense: bool = True, dense: DenseParams = DenseParams(),
                 lexical: bool = False) -> None:
        # A service searches one query at a time: an exhaustive scan gains nothing from
        # OpenMP threads (measured 8 ms with one thread against 19-40 ms with two, at 100,000
        # chunks). libgomp keeps this per thread: dense.search sets it again on each thread
        # that searches, and a big scan is split by ranges of codes on threads of ours.
        faiss.omp_set_num_threads(1)
        self.index_dir = index_dir
        self.expect = expect
        self.save_dense = save_dense
        self.dense = dense
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._inode: tuple[int, int] | None = None  # of the file the pool's connections read
        self._damaged: tuple | None = None  # the file found damaged, as it was then
        self._closed = False
        # lexical: BM25 from an in-memory index (built in the background) instead of FTS5
        self._lexical = LexicalBuilder(self._db) if lexical else None

    @property
    def _db(self) -> Path:
        return self.index_dir / DB_NAME

    def _connection(self) -> sqlite3.Connection:
        """An idle connection to the database file as it is now, or a new one."""
        try:
            st = self._db.stat()
        except OSError:  # missing, or a path that cannot hold it (a file where a folder is)
            raise IndexNotFoundError(f"no index in {self.index_dir}: run `make ingest` "
                                     "(or `python -m ingest`) first") from None
        inode, state = (st.st_dev, st.st_ino), _state(st)
        with self._lock:
            if state == self._damaged:  # as it was when found damaged: not read again
                raise damaged(self.index_dir, "found by an earlier check")
            checked = inode == self._inode
            if checked and self._idle:
                return self._idle.pop()
            stale = [] if checked else self._idle
            if not checked:  # a new file: forget the old one's connections
                self._idle, self._inode = [], None
        for conn in stale:
            conn.close()
        try:
            conn = connect(self._db)
            if not checked:
                self._check(conn)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                self._mark_damaged(state)
                raise damaged(self.index_dir, exc) from exc
            raise IndexNotFoundError(f"the index in {self.index_dir} cannot be read yet "
                                     f"({exc}): an ingest may be creating it") from exc
        if not checked:
            with self._lock:
                self._inode = inode
        return conn

    def _check(self, conn: sqlite3.Connection) -> None:
        """Once per database file: is it whole? (quick_check reads every page, without the
        index cross-checks of integrity_check: 0.3-0.4 s for 400 MB.)"""
        try:
            result = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        except BaseException:
            conn.close()
            raise
        if result != "ok":
            conn.close()
            raise sqlite3.DatabaseError(result)

    def _mark_damaged(self, state: tuple | None = None) -> None:
        """Remember the file as damaged (by its identity, size and time): requests get the
        503 without reading it again, until it is replaced or changed."""
        if state is None:
            try:
                state = _state(self._db.stat())
            except OSError:
                return
        with self._lock:
            self._damaged, self._inode = state, None
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def open(self, previous: Snapshot | None = None) -> SqliteSnapshot:
        # While an ingest is publishing a commit's FAISS file, a reader that needs it builds
        # it in memory only: writing it too would race the ingest for nothing.
        # Asked only when a commit's FAISS index is loaded, not on every request.
        conn = self._connection()
        try:
            snap = SqliteSnapshot.open(self.index_dir, self.expect, previous=previous,
                                       save_dense=lambda: (self.save_dense
                                                           and not ingest_running(self.index_dir)),
                                       conn=conn, release=self._release,
                                       on_damage=self._mark_damaged, dense_params=self.dense)
        except IndexDamagedError:
            self._mark_damaged()
            raise
        if self._lexical is not None:
            snap.lexical = self._lexical.get(snap.commit)
        return snap

    def storage(self) -> dict[str, int]:
        """Bytes on disk: the database, its write-ahead log, and the FAISS files."""
        sizes = {"database": 0, "wal": 0, "dense": 0}
        for name, path in (("database", self._db), ("wal", self._db.with_name(DB_NAME + "-wal"))):
            try:
                sizes[name] = path.stat().st_size
            except OSError:
                pass
        for dense in self.index_dir.glob(dense_path(self.index_dir, "*").name):
            try:
                sizes["dense"] += dense.stat().st_size
            except OSError:
                pass
        return sizes

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        if self._lexical is not None:
            self._lexical.close()

    def __enter__(self) -> "SqliteReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
