"""SQLite's errors as ours: a damaged file, a full disk or an unwritable folder each become an
IngestError whose message says what happened and what fixes it, without the folder's path (the
service shows these messages to clients; the path is in the cause, for the log)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from ingest.errors import IndexDamagedError, IndexStorageError


def is_damage(exc: BaseException) -> bool:
    """A damaged database file (not a busy or locked one, not a missing table in an index
    being created): what SQLite calls "malformed" or "not a database"."""
    return (isinstance(exc, sqlite3.DatabaseError)
            and not isinstance(exc, (sqlite3.OperationalError, sqlite3.ProgrammingError,
                                     sqlite3.IntegrityError)))


def damaged(index_dir: Path, exc: BaseException | str) -> IndexDamagedError:
    return IndexDamagedError(
        f"the index database is damaged ({exc}); `python -m ingest --rebuild` (or `make ingest "
        "ARGS=--rebuild`, or POST /ingest with rebuild) moves it aside and builds a new one")


def storage_error(exc: BaseException) -> IndexStorageError | IndexDamagedError | None:
    """What a failed write means for the user, or None when it is not a storage fault."""
    if is_damage(exc):
        return damaged(Path(), exc)
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and "full" in text or (
            isinstance(exc, OSError) and exc.errno == 28):
        return IndexStorageError("the disk is full: the index could not be written (the last "
                                 "commit still answers); free some space and ingest again")
    if isinstance(exc, (sqlite3.OperationalError, OSError)):
        what = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
        return IndexStorageError(f"the index folder cannot be written ({what}); check that it "
                                 "exists and is writable (the last commit still answers)")
    return None
