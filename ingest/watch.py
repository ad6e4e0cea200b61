"""Watch the corpus folder and report when its documents may have changed.

`watch_corpus` blocks (run it on a thread) until its stop event is set. It calls `on_ready()`
each time the watch is (re-)established, so the caller can catch up with changes made while
nobody watched, and `on_change(paths)` once a burst of relevant file events has been followed by
`quiet_ms` without another (or has gone on for `max_batch_ms`): an editor's save (temp file,
write, rename) or a file copied in several writes is one call, made once the writing has
stopped. Hidden files, editor and download temporaries (see `ingest.scan.is_ignored_name`) and
the index folder itself raise no call and hold none back.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from ingest.scan import is_ignored_name

log = logging.getLogger("ragfirst.watch")


def corpus_filter(corpus_dir: Path, index_dir: Path) -> Callable[[object, str], bool]:
    """True for file events that may change what the corpus holds."""
    import watchfiles

    root = corpus_dir.resolve()
    index = index_dir.resolve()

    def relevant(change: object, path: str) -> bool:
        p = Path(path)
        if p == index or index in p.parents:
            return False  # the index inside the corpus: its own writes are not documents
        try:
            rel = p.relative_to(root)
        except ValueError:
            return False
        if any(part.startswith(".") for part in rel.parts):
            return False
        # Temporary names are files the scan skips; a folder may have any name ("2024"), and
        # a deleted path may have been a folder, so only new or changed files are judged by it.
        if change != watchfiles.Change.deleted and not p.is_dir():
            return not is_ignored_name(p.name)
        return True

    return relevant


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = folder.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if folder.is_dir() else None


def watch_corpus(corpus_dir: Path, index_dir: Path, on_change: Callable[[list[str]], None],
                 stop: threading.Event, *, on_ready: Callable[[], None] = lambda: None,
                 quiet_ms: int = 300, max_batch_ms: int = 10_000, retry_s: float = 2.0,
                 force_polling: bool | None = None) -> None:
    import watchfiles

    root = corpus_dir.resolve()
    missing_logged = False
    while not stop.is_set():
        identity = _identity(root)
        if identity is None:
            if not missing_logged:
                log.warning("corpus folder %s does not exist; watching for it to appear", root)
                missing_logged = True
            stop.wait(retry_s)
            continue
        missing_logged = False
        ready_pending = True
        relevant = corpus_filter(root, index_dir)
        pending: set[str] = set()
        first = last = 0.0  # when the pending burst began, and its latest relevant event
        try:
            # watchfiles yields a batch once its set of changed paths stops growing, which
            # happens while a file is still being written (the same path again adds
            # nothing), and its filter would hide events that should not hold a burst back
            # (a download's .part file written for minutes). So every event comes here,
            # with an empty yield after `quiet_ms` without any, and a burst is handed on
            # once `quiet_ms` has passed since its last relevant event.
            for changes in watchfiles.watch(
                    root, watch_filter=None, debounce=quiet_ms, step=50, stop_event=stop,
                    rust_timeout=quiet_ms, yield_on_timeout=True, raise_interrupt=False,
                    force_polling=force_polling):
                if ready_pending:  # the watch is up: catch up with what happened before
                    ready_pending = False
                    on_ready()
                now = time.monotonic()
                fresh = {path for change, path in changes if relevant(change, path)}
                if fresh:
                    first, last = first or now, now
                    pending |= fresh
                if pending and (now - last >= quiet_ms / 1000
                                or now - first >= max_batch_ms / 1000):
                    batch, pending, first = sorted(pending), set(), 0.0
                    on_change(batch)
                if _identity(root) != identity:
                    log.warning("corpus folder %s was replaced or removed; watching again", root)
                    break
        except Exception:  # a watch that fails must not end freshness for good
            log.exception("watching %s failed; retrying in %.0f s", root, retry_s)
            stop.wait(retry_s)
