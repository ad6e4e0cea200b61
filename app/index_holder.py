"""The snapshot the service answers from, switched to the next one when ingest commits.

The holder reaches the index only through ingest's reader seam (`ingest.store.reader`): it asks
the reader which revision is the latest before each question (cheap) and opens a new snapshot
when it moved. Readers take a lease (`with holder.lease() as snap`): a request keeps the snapshot
it started with until it is done, while new requests get the new one. A replaced snapshot is
closed when its last lease ends (on SQLite, that lets the log be checkpointed past it)."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from app.errors import IndexNotReady
from ingest.errors import IndexMismatchError, IndexNotFoundError
from ingest.store.reader import IndexReader, Snapshot


class IndexHolder:
    def __init__(self, reader: IndexReader) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._closed = False
        self._leases: dict[int, int] = {}  # id(snapshot) -> requests reading it
        self._retired: dict[int, Snapshot] = {}  # replaced, still leased

    def _refresh(self) -> Snapshot:
        """The latest snapshot (caller holds the lock)."""
        if self._closed:
            raise IndexNotReady("the service is shutting down")
        current = self._snapshot
        if current is not None:
            latest = self._reader.latest()
            if latest is None or latest == current.revision:
                return current
        try:
            fresh = self._reader.open(previous=current)
        except IndexNotFoundError as exc:
            if current is None:
                raise IndexNotReady(str(exc)) from exc
            return current
        except IndexMismatchError as exc:
            raise IndexNotReady(str(exc)) from exc
        self._snapshot = fresh
        if current is not None:
            if self._leases.get(id(current)):
                self._retired[id(current)] = current  # closed when its last reader is done
            else:
                current.close()
        return fresh

    def current(self) -> Snapshot:
        """Switch to the latest generation now (after an ingest) and return it. To read from
        it, take a lease."""
        with self._lock:
            return self._refresh()

    @contextmanager
    def lease(self) -> Iterator[Snapshot]:
        with self._lock:
            snap = self._refresh()
            self._leases[id(snap)] = self._leases.get(id(snap), 0) + 1
        try:
            yield snap
        finally:
            with self._lock:
                left = self._leases[id(snap)] - 1
                if left:
                    self._leases[id(snap)] = left
                else:
                    del self._leases[id(snap)]
                    if self._retired.pop(id(snap), None) is not None:
                        snap.close()

    @property
    def open_snapshots(self) -> int:
        """Snapshots holding a read transaction: the current one and retired ones in use."""
        with self._lock:
            return (self._snapshot is not None) + len(self._retired)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for snap in [*self._retired.values(), self._snapshot]:
                if snap is not None:
                    snap.close()
            self._reader.close()
            self._snapshot, self._retired = None, {}
