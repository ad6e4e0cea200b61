"""A committed index read back out as it is stored, the same for every backend: what the
stores' `stored` and `stored_batches` share (ingest/copy.py reads a source index through them).
The backends run their own queries and hand their rows here."""
from __future__ import annotations

import json
from typing import Iterable, Iterator, Sequence

import numpy as np

from ingest.chunking import Chunk
from ingest.errors import IndexDamagedError, IndexNotFoundError
from ingest.store.records import IndexParams, NewDocument, RefusedFile, StoredBatch, StoredIndex

# (id, path, sha256, size, kind, text, ingested_at)
DOCUMENT_COLUMNS = "d.id, d.path, d.sha256, d.size, d.kind, d.text, d.ingested_at"
# (doc_id, ordinal, start, end, heading as JSON, page, tokens, text, vec_key), then the vector
CHUNK_COLUMNS = 'c.doc_id, c.ordinal, c.start, c."end", c.heading, c.page, c.tokens, c.text, ' \
                'c.vec_key'


def no_index(where: str) -> IndexNotFoundError:
    return IndexNotFoundError(f"no index in {where}: run `make ingest` (or `python -m ingest`) "
                              "first")


def stored_index(meta: dict[str, str], failures: Iterable[tuple], where: str) -> StoredIndex:
    """The index's identity from its meta row; IndexNotFoundError when nothing is committed."""
    if "dim" not in meta:
        raise no_index(where)
    return StoredIndex(IndexParams.from_meta(meta), int(meta["generation"]), meta["index_id"],
                       int(meta["dim"]), tuple(RefusedFile(*f) for f in failures))


def groups(counts: Iterable[tuple[int, int]], chunks_per_batch: int) -> Iterator[list[int]]:
    """Document ids (from (id, chunk count) rows, in order) in groups of about
    `chunks_per_batch` chunks and at most that many documents; a document is never split."""
    ids, size = [], 0
    for doc_id, n in counts:
        if ids and (size + n > chunks_per_batch or len(ids) >= chunks_per_batch):
            yield ids
            ids, size = [], 0
        ids.append(doc_id)
        size += n
    if ids:
        yield ids


def stored_batch(documents: Sequence[tuple], chunks: Iterable[tuple], dim: int,
                 where: str) -> StoredBatch:
    """A batch from its document rows and its chunk rows (ordered by document, then ordinal;
    each ends with the chunk's vector as float32, or None when it has none)."""
    by_doc: dict[int, list[tuple]] = {row[0]: [] for row in documents}
    vectors: dict[str, np.ndarray] = {}
    for row in chunks:
        *chunk, vector = row
        if vector is None or len(vector) != dim:
            raise IndexDamagedError(
                f"a chunk of the index in {where} has no vector of size {dim} (key {chunk[8]}); "
                "rebuild it with `python -m ingest --rebuild`")
        by_doc[chunk[0]].append(chunk)
        vectors.setdefault(chunk[8], vector)
    docs = [NewDocument(path, sha, size, kind, text,
                        [Chunk(c[1], c[2], c[3], c[7], tuple(json.loads(c[4])), c[5], c[6])
                         for c in by_doc[doc_id]],
                        [c[8] for c in by_doc[doc_id]], ingested_at)
            for doc_id, path, sha, size, kind, text, ingested_at in documents]
    keys = list(vectors)
    matrix = (np.stack([vectors[k] for k in keys]).astype(np.float32, copy=False) if keys
              else np.zeros((0, dim), dtype=np.float32))
    return StoredBatch(docs, keys, matrix)
