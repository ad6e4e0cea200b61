"""One ingest per index at a time, across processes: a file lock in the index folder, released by
the OS if its holder dies."""
from __future__ import annotations

import fcntl
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_NAME = "ingest.lock"


@contextmanager
def ingest_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index's ingest lock, waiting (and saying so) while another process has it."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK_NAME, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another ingest of {index_dir} to finish...", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ingest_running(index_dir: Path) -> bool:
    """Whether an ingest (of any process, this one included) holds the index's lock now (False
    when the lock file cannot be read: no ingest can hold it then either)."""
    try:
        f = open(index_dir / LOCK_NAME)
    except OSError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False
