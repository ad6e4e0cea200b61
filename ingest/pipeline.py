"""A producer on a thread of its own, running ahead of its consumer through a bounded queue.

The ingest loads and chunks files on it while the caller's thread embeds: a PDF parser is
Python holding the GIL, and torch and ONNX Runtime release it while they compute, so the two
overlap. The bound is a total weight (an ingest weighs a document by its chunks), so the
producer never holds more than `limit` of work the consumer has not taken yet.

Shutdown is clean both ways: an exception in the producer is raised in the consumer (at the
item where it happened), and a consumer that stops early (an exception of its own, a break)
stops the producer when it leaves the `with` block: the producer finishes the item in its
hands, puts nothing more, and its thread ends before `__exit__` returns.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")

_ITEM, _ERROR, _DONE = "item", "error", "done"


class Prefetch(Generic[T]):
    """`with Prefetch(items, limit=...) as ahead: for item in ahead: ...` iterates `items`,
    produced on a thread named `name`, at most `limit` (by `weight`, 1 per item unless told)
    ahead of the loop. An item heavier than `limit` still passes, alone. `limit=0`: nothing
    runs ahead; the items are made on the caller's thread, as the loop asks for them."""

    def __init__(self, items: Iterable[T], *, limit: int,
                 weight: Callable[[T], int] = lambda _: 1, name: str = "prefetch") -> None:
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        self._items, self._limit, self._weight = items, limit, weight
        self._queue: deque[tuple[str, object, int]] = deque()
        self._held = 0  # the weight in the queue
        self._stopped = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)

    def __enter__(self) -> Prefetch[T]:
        if self._limit:
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop the producer (what it had queued is dropped) and wait for its thread to end."""
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._held = 0
            self._cond.notify_all()
        if self._thread.ident is not None:
            self._thread.join()

    def __iter__(self) -> Iterator[T]:
        if not self._limit:
            yield from self._items
            return
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                kind, value, weight = self._queue.popleft()
                self._held -= weight
                self._cond.notify_all()
            if kind == _DONE:
                return
            if kind == _ERROR:
                raise value  # type: ignore[misc]  # the producer's exception, as it was
            yield value  # type: ignore[misc]

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(_ITEM, item, max(0, self._weight(item))):
                    return
        except BaseException as exc:  # handed to the consumer, who raises it
            self._put(_ERROR, exc, 0)
        else:
            self._put(_DONE, None, 0)
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:  # a generator: its own cleanup runs now, on this thread
                close()

    def _put(self, kind: str, value: object, weight: int) -> bool:
        """Queue one entry once there is room for it; False when the consumer stopped."""
        with self._cond:
            while self._held and self._held + weight > self._limit and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return False
            self._queue.append((kind, value, weight))
            self._held += weight
            self._cond.notify_all()
            return True
