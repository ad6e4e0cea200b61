"""Threads beside the caller's, for work that lets go of the GIL (FAISS scans, ONNX Runtime
runs). concurrent.futures' pool almost does it; what it lacks is why this exists: in a forked
child the parent's pool has no threads (its work would wait forever), and at interpreter
shutdown no new thread may start (its submit raises). Here a child makes a pool of its own, and
at shutdown the work runs on the caller's thread."""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable


class SidePool:
    def __init__(self, workers: int, name: str,
                 initializer: Callable[[], None] | None = None) -> None:
        self._workers, self._name, self._initializer = workers, name, initializer
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable, *args) -> Future:
        """fn(*args) on a pool thread; a Future of its result or its exception."""
        try:
            return self._current().submit(fn, *args)
        except RuntimeError:  # the interpreter is shutting down: no new threads, run it here
            done: Future = Future()
            try:
                done.set_result(fn(*args))
            except Exception as exc:  # handed to the caller, as a pool thread's would be
                done.set_exception(exc)
            return done

    def _current(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name,
                                                initializer=self._initializer)
                self._pid = os.getpid()
            return self._pool
