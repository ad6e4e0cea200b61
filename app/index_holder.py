"""What the service answers from: a snapshot of the latest committed generation per request.

The holder reaches the index only through ingest's reader seam (`ingest.store.reader`). A
request takes a lease (`with holder.lease() as snap`): a snapshot of the latest commit, opened
for it and closed when it is done, so everything it retrieves comes from one generation while
new requests already see the next one, and no reader holds the store back between requests.
What does not change between commits is reused from the previous snapshot (the reader decides
what: on SQLite, the FAISS index and the counts).

When the index the service was answering from disappears (deleted, damaged), `on_lost` is
called once, so the service can rebuild it without a person; requests get 503 meanwhile."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from app.errors import IndexNotReady
from ingest.errors import (IndexDamagedError, IndexMismatchError, IndexNotFoundError,
                           IndexUnavailableError)
from ingest.store.reader import IndexReader, Snapshot


class IndexHolder:
    def __init__(self, reader: IndexReader) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        self._last: Snapshot | None = None  # the latest opened (closed or not): for reuse
        self._open = 0  # snapshots open now (each a read transaction)
        self._closed = False
        self._lost_reported = False
        self.on_lost: Callable[[str], None] | None = None

    def _snapshot(self) -> Snapshot:
        """A new snapshot of the latest commit (caller holds the lock)."""
        if self._closed:
            raise IndexNotReady("the service is shutting down")
        try:
            snap = self._reader.open(previous=self._last)
        except (IndexNotFoundError, IndexDamagedError) as exc:
            self._lost(exc)
            raise IndexNotReady(str(exc)) from exc
        except (IndexMismatchError, IndexUnavailableError) as exc:  # rebuilding cannot help
            raise IndexNotReady(str(exc)) from exc
        self._last, self._lost_reported = snap, False
        return snap

    def _lost(self, exc: Exception) -> None:
        """An index that was there, or one that is damaged, asks to be rebuilt (once)."""
        damaged = isinstance(exc, IndexDamagedError)
        if ((self._last is not None or damaged) and not self._lost_reported
                and self.on_lost is not None):
            self._lost_reported = True
            self.on_lost("damaged" if damaged else "missing")

    @contextmanager
    def lease(self) -> Iterator[Snapshot]:
        with self._lock:
            snap = self._snapshot()
            self._open += 1
        try:
            yield snap
        except IndexDamagedError as exc:  # found by a read: the file broke under us
            with self._lock:
                self._last = None  # nothing of it is reused
                self._lost(exc)
            raise IndexNotReady(str(exc)) from exc
        except IndexUnavailableError as exc:  # the database went away during the request
            raise IndexNotReady(str(exc)) from exc
        finally:
            snap.close()
            with self._lock:
                self._open -= 1

    def current(self) -> Snapshot:
        """The latest generation's snapshot, already closed: its generation, revision, id and
        counts, for probes. To read from the index, take a lease."""
        with self.lease() as snap:
            return snap

    @property
    def open_snapshots(self) -> int:
        """Snapshots open now: each is a read transaction of a request in progress."""
        with self._lock:
            return self._open

    def storage(self) -> dict[str, int]:
        return self._reader.storage()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._reader.close()
