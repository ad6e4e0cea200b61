"""BM25 in memory: the SQLite store's lexical ranking without FTS5 on the request's path.

FTS5 scores every row a query matches, and each row's length is a b-tree lookup: a question of
common words over 100,000 chunks took 7.7 ms p50 in-process, more than the embedding and the
dense search together. Here a commit's chunks are held as posting lists in numpy arrays (for
each term, the rows that hold it and how often), and a query sums FTS5's formula over its
terms' postings: a fraction of a millisecond. The terms are the ones FTS5 makes
(ingest.store.bm25, shared with the Postgres store) and the "common terms" cut is the same, so
it ranks as FTS5 does (the tests compare the two).

Built from the database in the background (the reader's `LexicalBuilder`): until a commit's
index is ready, requests are served by FTS5, so freshness does not wait for it. A new commit's
index starts from the previous one: chunk ids are never reused, so a chunk's text never
changes, and only the chunks added since are tokenized. Kept in memory only: a service start
tokenizes every chunk once (seconds at 100,000 chunks, in the background).

Our own rather than the bm25s library: bm25s precomputes every score into a scipy matrix, so
each commit (the chunk count and the average length change) would rebuild all of it, and its
idf and tokenizer are not FTS5's.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ingest.store.bm25 import B, K1, MAX_ROWS, idf, query_terms, rarest, terms
from ingest.store.sqlite.store import connect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LexicalIndex:
    """One commit's chunks as posting lists. Row r is chunk `ids[r]` (ids ascending); the
    postings of term t are rows[offsets[t]:offsets[t + 1]] with frequencies `tfs` alike."""

    commit: str
    index_id: str
    ids: np.ndarray  # int64, ascending
    lengths: np.ndarray  # float32: each row's length in terms
    vocab: dict[str, int]
    offsets: np.ndarray  # int64, len(vocab) + 1
    rows: np.ndarray  # int32
    tfs: np.ndarray  # uint16 (a term more than 65,535 times in one chunk counts 65,535)
    norm: np.ndarray  # float64: each row's k1 * (1 - b + b * length / average length)

    def df(self, term: str) -> int:
        t = self.vocab.get(term)
        return 0 if t is None else int(self.offsets[t + 1] - self.offsets[t])

    def doc_freq(self, word: str) -> int:
        """Chunks holding the word (a word of several terms: its rarest term's count)."""
        found = terms(word)
        return min(self.df(t) for t in found) if found else 0

    def search(self, query: str, k: int, allowed: np.ndarray | None = None,
               max_rows: int = MAX_ROWS) -> list[tuple[int, float]]:
        """The top k (chunk id, BM25 score), best first, ties by id; `allowed`: the chunk ids
        a filter lets through."""
        n = len(self.ids)
        dfs = {t: self.df(t) for t in query_terms(query)}
        kept = rarest(dfs, max_rows)
        if not kept or n == 0:
            return []
        scores = np.zeros(n)
        for term in kept:
            t = self.vocab[term]
            rows = self.rows[self.offsets[t]:self.offsets[t + 1]]
            tf = self.tfs[self.offsets[t]:self.offsets[t + 1]].astype(np.float64)
            scores[rows] += idf(dfs[term], n) * tf * (K1 + 1) / (tf + self.norm[rows])
        hit = np.flatnonzero(scores)
        if allowed is not None:
            hit = hit[np.isin(self.ids[hit], allowed)]
        if len(hit) > k:
            hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
        order = np.lexsort((self.ids[hit], -scores[hit]))
        return [(int(self.ids[r]), float(scores[r])) for r in hit[order]]


def _postings(texts: Iterable[str], vocab: dict[str, int]
              ) -> tuple[list[int], array, array, array]:
    """(lengths, term of each posting, row of each posting, frequency of each posting) of the
    texts, new terms added to `vocab`. The postings in C arrays: a list would hold an object
    per number (hundreds of MB at 100,000 chunks)."""
    lengths: list[int] = []
    post_terms, post_rows, post_tfs = array("i"), array("i"), array("i")
    for row, text in enumerate(texts):
        counts = Counter(terms(text))
        lengths.append(sum(counts.values()))
        post_terms.extend(vocab.setdefault(t, len(vocab)) for t in counts)
        post_rows.extend([row] * len(counts))
        post_tfs.extend(counts.values())
    return lengths, post_terms, post_rows, post_tfs


def _group(term_of: np.ndarray, rows: np.ndarray, tfs: np.ndarray, vocab_size: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Postings sorted by term (rows ascending within one): offsets, rows, frequencies."""
    order = np.lexsort((rows, term_of))
    offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(np.bincount(term_of, minlength=vocab_size), out=offsets[1:])
    return offsets, rows[order].astype(np.int32), tfs[order]


def _compact(vocab: dict[str, int], term_of: np.ndarray) -> tuple[dict[str, int], np.ndarray]:
    """The vocabulary without the terms no chunk holds any more, once they are over half of it
    (so that a long-lived service's vocabulary does not grow with every deleted chunk)."""
    live = np.flatnonzero(np.bincount(term_of, minlength=len(vocab)))
    if len(live) * 2 >= len(vocab):
        return vocab, term_of
    names = list(vocab)  # in term order: terms are numbered as they are added
    remap = np.full(len(vocab), -1, dtype=np.int32)
    remap[live] = np.arange(len(live), dtype=np.int32)
    return {names[t]: n for n, t in enumerate(live)}, remap[term_of]


def _terms_of(index: LexicalIndex) -> np.ndarray:
    """The term of each of the index's postings."""
    return np.repeat(np.arange(len(index.vocab), dtype=np.int32), np.diff(index.offsets))


def build(conn: sqlite3.Connection, previous: LexicalIndex | None = None,
          stop: Callable[[], bool] = lambda: False) -> LexicalIndex | None:
    """The index of the commit `conn`'s read transaction sees (the caller holds one), from
    `previous` and the chunks added since when it is of the same index; None when `stop()`
    turned true on the way (the service closing)."""
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('commit', 'index_id')"))
    commit = meta["commit"]
    index_id = meta.get("index_id") or commit
    if previous is not None and previous.index_id != index_id:
        previous = None
    ids_now = np.array([r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY id")],
                       dtype=np.int64)
    vocab = dict(previous.vocab) if previous is not None else {}
    old_ids = previous.ids if previous is not None else np.zeros(0, dtype=np.int64)
    added = np.setdiff1d(ids_now, old_ids, assume_unique=True)
    try:
        new_lengths, p_terms, p_rows, p_tfs = _postings(_texts(conn, added, stop), vocab)
    except _Stopped:
        return None
    term_of = np.frombuffer(p_terms, dtype=np.int32)
    at = np.searchsorted(ids_now, added).astype(np.int32)  # int32: bounds the build's memory
    rows = at[np.frombuffer(p_rows, dtype=np.int32)]
    tfs = np.minimum(np.frombuffer(p_tfs, dtype=np.int32), 65_535).astype(np.uint16)
    lengths = np.zeros(len(ids_now), dtype=np.float32)
    lengths[at] = new_lengths
    if previous is not None and len(old_ids):
        kept = np.isin(old_ids, ids_now, assume_unique=True)
        now_row = np.searchsorted(ids_now, old_ids).astype(np.int32)
        lengths[now_row[kept]] = previous.lengths[kept]
        live = kept[previous.rows]
        term_of = np.concatenate([_terms_of(previous)[live], term_of])
        rows = np.concatenate([now_row[previous.rows[live]], rows])
        tfs = np.concatenate([previous.tfs[live], tfs])
    vocab, term_of = _compact(vocab, term_of)
    offsets, rows, tfs = _group(term_of, rows, tfs, len(vocab))
    average = float(lengths.mean()) if len(lengths) else 1.0
    norm = K1 * (1 - B + B * lengths.astype(np.float64) / (average or 1.0))
    return LexicalIndex(commit, index_id, ids_now, lengths, vocab, offsets, rows, tfs, norm)


class _Stopped(Exception):
    """The build was told to stop."""


def _texts(conn: sqlite3.Connection, ids: np.ndarray, stop: Callable[[], bool],
           batch: int = 2000) -> Iterator[str]:
    """The texts of the chunks `ids` (ascending, all there: the caller's read transaction
    listed them), read in batches, so that only a batch of texts is held at a time."""
    for at in range(0, len(ids), batch):
        if stop():
            raise _Stopped
        part = ids[at:at + batch].tolist()
        yield from (text for (text,) in conn.execute(
            f"SELECT text FROM chunks WHERE id IN ({','.join('?' * len(part))}) ORDER BY id",
            part))


class LexicalBuilder:
    """Builds the latest commit's index in a background thread, one build at a time: `get`
    hands out the index of a commit when it is ready and starts a build when it is not. A
    build that failed other than by SQLite (out of memory) is not retried for that commit:
    FTS5 answers for it."""

    def __init__(self, db: Path) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._ready: LexicalIndex | None = None
        self._ready_file: tuple[int, int] | None = None  # (device, inode) it was built from
        self._failed: str | None = None  # the commit whose build failed
        self._thread: threading.Thread | None = None
        self._closed = False

    def get(self, commit: str) -> LexicalIndex | None:
        with self._lock:
            ready = self._ready
            if ready is not None and ready.commit == commit:
                return ready
            if (self._closed or self._failed == commit
                    or (self._thread is not None and self._thread.is_alive())):
                return None
            self._thread = threading.Thread(target=self._build, args=(commit,),
                                            name="lexical-index", daemon=True)
            self._thread.start()
        return None

    def _build(self, commit: str) -> None:
        try:
            st = self._db.stat()
            conn = connect(self._db)
        except (sqlite3.Error, OSError):
            return  # the next request tries again
        # A copy of an index keeps its id but numbers its chunks anew: only the same file's
        # previous index is built upon.
        file = (st.st_dev, st.st_ino)
        previous = self._ready if self._ready_file == file else None
        try:
            conn.execute("BEGIN")  # one read transaction: one commit's chunks
            index = build(conn, previous, lambda: self._closed)
        except sqlite3.Error:
            index = None  # the file went away or broke: the reader reports that on its path
        except Exception:  # noqa: BLE001 - a bug or no memory must not retry on every request
            log.exception("the in-memory BM25 index of commit %s could not be built; FTS5 "
                          "answers for it", commit)
            with self._lock:
                self._failed = commit
            index = None
        finally:
            conn.close()  # ends the read transaction
        if index is not None:
            with self._lock:
                self._ready, self._ready_file = index, file

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
