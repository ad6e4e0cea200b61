"""The dense (FAISS) index: a file derived from the vectors in SQLite.

Its name carries the index's uid and the generation it was built from, so a reader can tell a
current file from a stale one and rebuilds (then saves) it when the file is missing, stale or
damaged. It is written to a temporary file, fsynced and renamed into place: a crash leaves
either no file or a whole one.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import faiss
import numpy as np

from ingest import failpoints


def dense_path(index_dir: Path, uid: str, generation: int) -> Path:
    return index_dir / f"dense-{uid}-g{generation}.faiss"


def build_dense(conn: sqlite3.Connection, dim: int) -> faiss.Index:
    """Inner-product index over every chunk's vector (vectors are normalized: cosine), ids =
    chunk ids. Reads inside whatever transaction `conn` is in."""
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    cursor = conn.execute(
        "SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.key = c.vec_key ORDER BY c.id")
    while rows := cursor.fetchmany(20_000):
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
        index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids)
    return index


def write_dense(index: faiss.Index, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    failpoints.hit("mid-dense-write")
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for old in path.parent.glob("dense-*.faiss"):  # older generations are no longer needed
        if old != path:
            old.unlink(missing_ok=True)
    for tmp in path.parent.glob(".dense-*.tmp"):  # left by a writer that was killed
        if not _alive(int(tmp.suffixes[-2].lstrip("."))):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_dense(conn: sqlite3.Connection, index_dir: Path, uid: str, generation: int,
               dim: int, expected: int) -> faiss.Index:
    """The current file if it is whole and matches; else rebuilt from SQLite and saved."""
    path = dense_path(index_dir, uid, generation)
    try:
        index = faiss.read_index(str(path))
        if index.ntotal == expected and index.d == dim:
            return index
    except (RuntimeError, OSError):  # missing or damaged: rebuild below
        pass
    index = build_dense(conn, dim)
    try:
        write_dense(index, path)
    except OSError:  # a read-only index folder still serves from memory
        pass
    return index
