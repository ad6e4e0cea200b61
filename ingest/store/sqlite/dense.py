"""The dense (FAISS) index: a file derived from the vectors in SQLite.

Its name carries the id of the commit it was built from (a random id per commit, kept in the
database's meta table), so a reader can tell the current file from a stale one, even after the
database was restored from a backup, and the kind of index (`DenseParams.kind`): exhaustive
below RAG_ANN_MIN_CHUNKS chunks, HNSW (with its build parameters) from there on, so a file of
the other kind is not current either. When the file is missing or damaged, the reader rebuilds
it from SQLite and saves it. It is written to a unique temporary file, fsynced and renamed into
place: a crash leaves either no file or a whole one. Only the ingest (under its lock) removes
files of older commits (and of another kind).
"""
from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ingest import failpoints
from ingest.settings import IngestSettings
from ingest.side_pool import SidePool

EXACT = "flat"
# HNSW candidates per search when RAG_HNSW_EF_SEARCH is unset: recall@10 >= 0.99 against
# exact search at 1M stand-in chunks with m 16, ef_construction 64 (`make bench-ann`).
EF_SEARCH = 400
# An exhaustive scan of this many chunks or more is split into one range per free core, searched
# at once (FAISS lets go of the GIL): 8.1 -> 3.8 ms p50 at 100,000 chunks on two cores. The
# scan of one query is single-threaded in FAISS (OpenMP splits the queries, not the codes),
# and below this the hand-off costs about what it saves. A split costs more CPU than one
# scan (4.6 against 3.7 ms of core time at 100,000): it takes only the cores that no other
# exhaustive scan holds (`scan`), so under load each scan runs whole on its caller's thread.
SPLIT_MIN_CHUNKS = 20_000
_SCAN_PARTS = max(1, min(len(os.sched_getaffinity(0)), 8))
_searcher = threading.local()
_scanning = 0  # exhaustive scans in progress in this process
_scanning_lock = threading.Lock()


def _reset_scans() -> None:  # a forked child has none of its parent's scans running
    global _scanning, _scanning_lock
    _scanning, _scanning_lock = 0, threading.Lock()


os.register_at_fork(after_in_child=_reset_scans)


def _one_omp_thread() -> None:
    """One query is scanned by one thread, but FAISS opens an OpenMP parallel region per
    search anyway, with a team as big as the calling thread's setting (per thread in
    libgomp: the cores, unless this thread said otherwise). The rest of the team would only
    wait, or spin, beside the other requests: every thread that searches asks for one."""
    if not getattr(_searcher, "single", False):
        faiss.omp_set_num_threads(1)
        _searcher.single = True


_scan_pool = SidePool(_SCAN_PARTS, "dense-scan", initializer=_one_omp_thread)


def _default(name: str) -> int:
    return IngestSettings.model_fields[name].default


@dataclass(frozen=True)
class DenseParams:
    """Which FAISS index a commit gets, and how HNSW is searched. The defaults are the
    settings' (RAG_ANN_MIN_CHUNKS, RAG_HNSW_M, RAG_HNSW_EF_CONSTRUCTION, RAG_HNSW_EF_SEARCH:
    the same graph settings as pgvector's, one setting per concept)."""

    ann_min_chunks: int = _default("ann_min_chunks")
    m: int = _default("hnsw_m")
    ef_construction: int = _default("hnsw_ef_construction")
    ef_search: int = EF_SEARCH

    @classmethod
    def of(cls, settings: IngestSettings) -> "DenseParams":
        return cls(settings.ann_min_chunks, settings.hnsw_m, settings.hnsw_ef_construction,
                   settings.hnsw_ef_search or EF_SEARCH)

    def kind(self, chunks: int) -> str:
        """What names the index a commit of `chunks` chunks gets (ef_search is read per search,
        so it is not part of it)."""
        if chunks < self.ann_min_chunks:
            return EXACT
        return f"hnsw{self.m}-efc{self.ef_construction}"


def dense_path(index_dir: Path, commit: str, kind: str = EXACT) -> Path:
    # The exact index keeps the name it had before HNSW came: such indexes stay current.
    return index_dir / (f"dense-{commit}.faiss" if kind == EXACT
                        else f"dense-{commit}.{kind}.faiss")


def empty_index(dim: int, kind: str, params: DenseParams) -> faiss.Index:
    """Vectors are kept as float16 either way (a scalar quantizer with nothing to train).
    Exhaustive: half the memory read of float32, 4.2 ms instead of 8.3 ms at 100,000 x 384 on
    one core, recall@50 of 0.999 against float32, rebuilt in a fraction of a second. HNSW:
    the graph on top of the same float16 codes (half the memory of IndexHNSWFlat's)."""
    if kind == EXACT:
        inner = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16,
                                           faiss.METRIC_INNER_PRODUCT)
    else:
        inner = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, params.m,
                                  faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = params.ef_construction
        inner.hnsw.efSearch = params.ef_search
    return faiss.IndexIDMap2(inner)


def build_dense(conn: sqlite3.Connection, dim: int, kind: str,
                params: DenseParams = DenseParams()) -> faiss.Index:
    """Inner-product index of `kind` (`params.kind` of the chunk count, which the callers
    have counted) over every chunk's vector (vectors are normalized: cosine), ids = chunk ids.
    Reads inside whatever transaction `conn` is in."""
    index = empty_index(dim, kind, params)
    # rows in id order: a whole scan's ties then fall as a split scan's do (`scan`)
    cursor = conn.execute(
        "SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.key = c.vec_key ORDER BY c.id")
    # HNSW inserts in parallel within one add call: bigger batches keep both cores busy.
    while rows := cursor.fetchmany(20_000 if kind == EXACT else 100_000):
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
        index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids)
    return index


def write_dense(index: faiss.Index, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        os.close(fd)
        try:
            faiss.write_index(index, tmp)
        except RuntimeError as exc:  # FAISS reports a failed write (a full disk) this way
            code = errno.ENOSPC if "space" in str(exc).lower() else errno.EIO
            raise OSError(code, f"cannot write the FAISS index ({os.strerror(code)})") from exc
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        failpoints.hit("mid-dense-write")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale(index_dir: Path, keep: Path) -> None:
    """Drop FAISS files of older commits and temporary files of killed writers. Only the
    ingest calls this, under its lock: it owns the index folder's files."""
    for old in index_dir.glob("dense-*.faiss"):
        if old != keep:
            old.unlink(missing_ok=True)
    for tmp in index_dir.glob(".dense-*.tmp"):
        tmp.unlink(missing_ok=True)


def load_dense(conn: sqlite3.Connection, index_dir: Path, commit: str, dim: int,
               expected: int, *, save: bool = True,
               params: DenseParams = DenseParams()) -> faiss.Index:
    """The current file of the kind the settings ask for, if it is whole and matches; else
    rebuilt from SQLite (and saved). A reader does not build an HNSW graph (16 s at 100,000
    chunks, 10 minutes at 1M here, while its requests wait): it searches an exact index built
    in memory (7 s at 1M) until the ingest's publish has written the graph's file."""
    kind = params.kind(expected)
    path = dense_path(index_dir, commit, kind)
    try:
        index = faiss.read_index(str(path))
        if index.ntotal == expected and index.d == dim:
            return _tuned(index, params)
    except (RuntimeError, OSError):  # missing or damaged: rebuild below
        pass
    index = build_dense(conn, dim, EXACT, params)
    if save and kind == EXACT:  # an exact index in place of a graph is this reader's alone
        try:
            write_dense(index, path)
        except OSError:  # a read-only index folder still serves from memory
            pass
    return index


def _hnsw(index: faiss.Index) -> faiss.IndexHNSW | None:
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def _tuned(index: faiss.Index, params: DenseParams) -> faiss.Index:
    """A loaded HNSW index searches with this reader's ef_search, not the builder's."""
    if (hnsw := _hnsw(index)) is not None:
        hnsw.hnsw.efSearch = params.ef_search
    return index


def search(index: faiss.Index, query: np.ndarray, k: int, allowed: np.ndarray | None,
           params: DenseParams) -> list[tuple[int, float]]:
    """Top-k (chunk id, inner product) of one query, among `allowed` ids if given.

    On HNSW a filter is applied while the graph is walked, so a filter that leaves few chunks
    can end the walk with fewer than k of them: those few are scored exactly instead (their
    vectors read back from the index), as are filters leaving fewer than RAG_ANN_MIN_CHUNKS
    chunks, where exhaustive search is cheap anyway and exact."""
    _one_omp_thread()
    hnsw = _hnsw(index) is not None
    if allowed is None:
        k = min(k, index.ntotal)
        if not hnsw and index.ntotal >= SPLIT_MIN_CHUNKS:
            return scan(index, query, k)
        found = _hits(*index.search(query, k))
    elif hnsw and allowed.size < params.ann_min_chunks:
        return exact_among(index, query, min(k, allowed.size), allowed)
    else:
        k = min(k, allowed.size)
        sel = faiss.IDSelectorBatch(allowed)
        sp = (faiss.SearchParametersHNSW(sel=sel, efSearch=params.ef_search) if hnsw
              else faiss.SearchParameters(sel=sel))
        found = _hits(*index.search(query, k, params=sp))
        if hnsw and len(found) < k:
            return exact_among(index, query, k, allowed)
    return found


def scan(index: faiss.IndexIDMap2, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The exhaustive top-k, split over the cores no other scan holds (`split_scan`), or
    whole on this thread when they are all taken."""
    global _scanning
    with _scanning_lock:
        parts = _SCAN_PARTS - _scanning
        held = max(parts, 1)
        _scanning += held
    try:
        if parts > 1:
            return split_scan(index, query, k, parts)
        # ties by id, as split_scan's; which tied rows make the cut is FAISS's (the first
        # rows), and rows are in id order (build_dense): the same hits as a split
        return sorted(_hits(*index.search(query, k)), key=lambda h: (-h[1], h[0]))
    finally:
        with _scanning_lock:
            _scanning -= held


def split_scan(index: faiss.IndexIDMap2, query: np.ndarray, k: int,
               parts: int = _SCAN_PARTS) -> list[tuple[int, float]]:
    """The exhaustive top-k, each of `parts` ranges of the stored vectors scanned on a thread
    of its own (a range selector on the inner index scores only its own codes), merged."""
    inner, n = faiss.downcast_index(index.index), index.ntotal
    bounds = [n * i // parts for i in range(parts + 1)]

    def scan_range(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        sp = faiss.SearchParameters(sel=faiss.IDSelectorRange(lo, hi))
        scores, rows = inner.search(query, min(k, hi - lo), params=sp)
        return scores[0], rows[0]

    ranges = [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]
    done = [f.result() for f in [_scan_pool.submit(scan_range, *r) for r in ranges]]
    scores = np.concatenate([d[0] for d in done])
    rows = np.concatenate([d[1] for d in done])
    keep = rows != -1
    scores, rows = scores[keep], rows[keep]
    ids = np.array([index.id_map.at(int(r)) for r in rows], dtype=np.int64)
    order = np.lexsort((ids, -scores))[:k]  # by score, ties by id: deterministic
    return [(int(ids[i]), float(scores[i])) for i in order]


def _hits(scores: np.ndarray, ids: np.ndarray) -> list[tuple[int, float]]:
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]


def exact_among(index: faiss.Index, query: np.ndarray, k: int, allowed: np.ndarray,
                block: int = 65_536) -> list[tuple[int, float]]:
    """Exact top-k among `allowed` ids, their vectors reconstructed from the index in blocks
    (bounded memory for a filter that leaves many chunks)."""
    if k <= 0:
        return []
    scores, ids = [], []
    for start in range(0, allowed.size, block):
        part = allowed[start:start + block]
        got = index.reconstruct_batch(part) @ query.ravel()
        top = np.argpartition(-got, min(k, got.size) - 1)[:k]
        scores.append(got[top])
        ids.append(part[top])
    all_scores, all_ids = np.concatenate(scores), np.concatenate(ids)
    order = np.lexsort((all_ids, -all_scores))[:k]  # by score, ties by id: deterministic
    return [(int(all_ids[i]), float(all_scores[i])) for i in order]
