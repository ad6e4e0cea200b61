"""The writer side of the store: what one ingest run needs, whatever holds the index. The sync
module (ingest/sync.py) writes only through this; `ingest.store.open_store` opens the backend the
settings name, holding the index's one-writer lock for the run.

A run reads what is indexed, stores the vectors it embeds in small checkpoints (`put_vectors`:
no reader looks them up until a commit refers to them, and a killed run's vectors are reused by
the next), then applies everything in ONE atomic commit (`commit_run`), after which readers see
the new generation or, until then, the old one.

A copy to another store (ingest/copy.py) reads a source index as it is stored (`stored`,
`stored_batches`) and writes the target like a run: its stored vectors through `put_vectors`,
then one `commit_run(..., copy_of=)` that keeps the source's generation and index_id.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from ingest.store.records import DocumentRow, NewDocument, StoredBatch, StoredIndex


class IndexStore(Protocol):
    moved_aside: Path | None  # where a rebuild moved a damaged index (SQLite), else None

    @property
    def meta(self) -> dict[str, str]:
        """What the last commit recorded: model id, chunking, `dim` (the vectors' size, once
        something was committed), generation..."""
        ...

    def documents(self) -> dict[str, DocumentRow]:
        """What is indexed now, by path."""
        ...

    def missing_vectors(self, keys: Iterable[str]) -> list[str]:
        """Keys (first-seen order, no repeats) that have no stored vector yet."""
        ...

    def put_vectors(self, keys: Sequence[str], vectors: np.ndarray, *,
                    replace: bool = False) -> None:
        """Store vectors in their own small commit; `replace` overwrites (a rebuild)."""
        ...

    def stored(self) -> StoredIndex:
        """The committed index's parameters, generation, id, vector size and refused files
        (IndexNotFoundError when nothing is committed yet)."""
        ...

    def stored_batches(self, chunks_per_batch: int = 1000) -> Iterator[StoredBatch]:
        """Every document as stored, with its chunks and the vectors they use, in batches of
        whole documents of about `chunks_per_batch` chunks (never all vectors at once)."""
        ...

    def commit_run(self, upserts: Sequence[NewDocument], deletes: Sequence[str],
                   failures: Sequence[tuple[str, str, int | None]],
                   model_dim: Callable[[], int],
                   before_commit: Callable[[], None] = lambda: None, *,
                   copy_of: StoredIndex | None = None) -> tuple[int, str]:
        """Apply one run atomically: drop `deletes`, replace each upsert's path, replace the
        refused files. Returns the (generation, commit id) readers now see. The generation
        moves only when indexed content changed (or on a rebuild). Vectors of another size than
        the index's are refused with the rebuild message; `model_dim` is asked only for an
        empty index. `copy_of` (a copy from another store): the index takes that one's
        generation and index_id instead, with a new commit and revision."""
        ...

    def publish(self, commit: str) -> None:
        """After the commit: derive what readers load (SQLite: the FAISS file)."""
        ...

    def checkpoint(self) -> None:
        """After a run, also a failed one: let the backend reclaim its log space."""
        ...

    def close(self) -> None: ...
