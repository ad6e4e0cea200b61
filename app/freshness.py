"""Keeping the index fresh from inside the service: the corpus watcher, POST /ingest, and the
catch-up run at start.

Every in-process ingest goes through `IngestRunner.run`, one at a time (a lock), and
`run_ingest` itself holds the index's file lock, so an ingest started from another process
(`make ingest`) waits for ours and ours for it. After a run commits, the service switches to
the new generation at once rather than on the next question.
"""
from __future__ import annotations

import logging
import threading
import time

from app.errors import AppError, IndexNotReady
from app.service import IndexHolder
from app.settings import Settings
from ingest.embedders import Embedder
from ingest.errors import CorpusNotFoundError, IndexMismatchError, IngestError, ModelUnavailableError
from ingest.sync import IngestReport, run_ingest
from ingest.watch import watch_corpus

log = logging.getLogger("ragfirst.ingest")


class IngestFailed(AppError):
    """An ingest the service ran could not be done; the message says how to fix it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _status_of(exc: Exception) -> int:
    if isinstance(exc, (CorpusNotFoundError, IndexMismatchError)):
        return 409  # the corpus or the index is not in a state an ingest can use
    if isinstance(exc, ModelUnavailableError):
        return 503
    return 500


class IngestRunner:
    def __init__(self, settings: Settings, embedder: Embedder, index: IndexHolder) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.running: str | None = None  # the trigger of the run in progress
        self.runs = 0
        self.failures = 0
        self.last: dict | None = None

    def run(self, trigger: str, *, rebuild: bool = False) -> IngestReport:
        """One incremental ingest (waits for one in progress). Raises IngestFailed."""
        with self._lock:
            self.running = trigger
            started = time.time()
            try:
                report = run_ingest(self.settings, self.embedder, rebuild=rebuild,
                                    progress=False)
            except Exception as exc:
                self.failures += 1
                self.last = {"trigger": trigger, "started_at": started, "ok": False,
                             "error": f"{exc}" if isinstance(exc, IngestError)
                             else f"{type(exc).__name__}: {exc}"}
                if isinstance(exc, IngestError):
                    log.error("ingest (%s) failed: %s", trigger, exc)
                else:
                    log.exception("ingest (%s) failed", trigger)
                raise IngestFailed(self.last["error"], _status_of(exc)) from exc
            finally:
                self.running = None
            self.runs += 1
            self.last = {"trigger": trigger, "started_at": started, "ok": True,
                         "seconds": round(report.seconds, 3), "generation": report.generation,
                         "added": len(report.added), "changed": len(report.changed),
                         "deleted": len(report.deleted), "failed": len(report.failed),
                         "deferred": len(report.deferred)}
        try:
            self.index.current()  # serve the new generation from now on
        except IndexNotReady:
            pass
        if report.added or report.changed or report.deleted or report.failed or trigger != "watch":
            log.info("ingest (%s): %d added, %d changed, %d deleted, %d refused, %d deferred; "
                     "generation %d, %.2f s", trigger, len(report.added), len(report.changed),
                     len(report.deleted), len(report.failed), len(report.deferred),
                     report.generation, report.seconds)
        return report

    def _run_quietly(self, trigger: str) -> None:
        try:
            self.run(trigger)
        except IngestFailed:
            pass  # logged and kept in `last` (shown by /readyz); the watch goes on

    def start_watching(self) -> None:
        """Watch the corpus on a thread: catch up once the watch is up, then ingest after each
        burst of changes."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=watch_corpus, name="corpus-watch", daemon=True,
            args=(self.settings.corpus_dir, self.settings.index_dir,
                  lambda paths: self._run_quietly("watch"), self._stop),
            kwargs={"on_ready": lambda: self._run_quietly("startup"),
                    "quiet_ms": self.settings.watch_quiet_ms})
        self._thread.start()
        log.info("watching %s for changes", self.settings.corpus_dir)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching. An ingest in progress is left to finish (or to die with the
        process: a killed ingest leaves the last commit serving)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def watching(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict:
        return {"watching": self.watching, "running": self.running, "runs": self.runs,
                "failures": self.failures, "last": self.last}
