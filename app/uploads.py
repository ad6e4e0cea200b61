"""An upload batch between the HTTP form and the ingest: each file checked and written through
app.corpus_files (or refused, with its reason, before it touches the disk), then, after the
batch's one ingest, each file's status settled from what the index holds. No HTTP here but the
status code the batch earns (`status_code`), which is the batch's own verdict."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

from app.corpus_files import (BadName, Exists, TooLarge, check_name, check_size,
                              write_atomically)
from app.errors import AppError

Status = Literal["added", "replaced", "unchanged", "refused", "exists"]
SHOWN_NAME_CHARS = 300  # of a refused name, in the answer


class Part(NamedTuple):
    """One file of the form: the name the client gave, its content, its size if known."""

    name: str
    file: BinaryIO
    size: int | None


@dataclass
class FileResult:
    path: str
    status: Status
    reason: str | None = None
    chunks: int | None = None

    def as_json(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


class CorpusUnwritable(AppError):
    """The collection's folder cannot take a file (a full disk, a read-only mount): the
    server's trouble, not the file's. Files of the batch written before it stay, and the
    route indexes them before it answers."""

    status = 503


def write_parts(root: Path, parts: list[Part], *, overwrite: bool,
                max_bytes: int) -> list[FileResult]:
    """Write each part under root, in order (a name given twice: the second is "exists", or
    replaces the first with `overwrite`). "added"/"replaced" for a file written; "refused"
    for a name or size that cannot be taken, "exists" for a name taken: neither touched the
    disk."""
    return [_write_one(root, part, overwrite, max_bytes) for part in parts]


def _write_one(root: Path, part: Part, overwrite: bool, max_bytes: int) -> FileResult:
    try:
        rel = check_name(part.name)
        if part.size is not None:  # the form parser counted it: refused before any write
            check_size(part.size, max_bytes)
        return FileResult(str(rel), write_atomically(root, rel, part.file, overwrite=overwrite,
                                                     max_bytes=max_bytes))
    except Exists as exc:
        return FileResult(part.name, "exists", str(exc))
    except (BadName, TooLarge) as exc:
        return FileResult(_shown(part.name), "refused", str(exc))
    except OSError as exc:
        raise CorpusUnwritable(f"the collection's folder cannot be written "
                               f"({exc.strerror or type(exc).__name__}); the files before "
                               "this one were written and indexed"
                               ) from exc


def _shown(name: str) -> str:
    """A refused name as the answer may repeat it: valid UTF-8 (a lone surrogate replaced),
    and short."""
    text = name.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= SHOWN_NAME_CHARS else text[:SHOWN_NAME_CHARS] + "…"


def settle(results: list[FileResult], before: dict[str, str], after: dict[str, tuple[str, int]],
           failed: dict[str, str]) -> None:
    """Each written file's status once the ingest has run. `before`/`after`: path -> sha256
    (and, after, chunks) of what the index held before the writes and holds now; `failed`:
    path -> reason of the files the ingest refused. Another run (the watcher's) may have
    indexed a file first: the index, not this run's report, says what became of it."""
    for r in results:
        if r.status not in ("added", "replaced"):
            continue
        if r.path in failed:
            r.status, r.reason = "refused", failed[r.path]
        elif r.path not in after:  # deleted, or changing again, while the ingest read it
            r.status, r.reason = "refused", ("written, but gone or changing when the ingest "
                                             "read it: see GET /documents")
        else:
            sha, r.chunks = after[r.path]
            if before.get(r.path) == sha:
                r.status = "unchanged"  # replaced by the same bytes


def status_code(results: list[FileResult]) -> int:
    """201 when a file was added or replaced (and indexed); else 422 when one was refused,
    409 when every one exists already, 200 when the rest were the same bytes again."""
    statuses = {r.status for r in results}
    if statuses & {"added", "replaced"}:
        return 201
    if "refused" in statuses:
        return 422
    return 409 if statuses == {"exists"} else 200
