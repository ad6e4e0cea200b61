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
from app.index_holder import IndexHolder
from ingest.embedders import Embedder
from ingest.settings import IngestSettings
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
    """Runs the service's ingests one at a time. Triggers that arrive while a run is going
    share the next run (which starts after they arrived, so it sees their changes): a burst
    of POST /ingest calls during a long run costs one more run, not one each."""

    def __init__(self, settings: IngestSettings, embedder: Embedder, index: IndexHolder, *,
                 quiet_ms: int = 300) -> None:
        self.settings = settings  # what run_ingest reads: the corpus, the index, chunking
        self.embedder = embedder
        self.index = index
        self.quiet_ms = quiet_ms  # the watcher's quiet period
        self._cond = threading.Condition()
        self._started = 0  # runs started so far; a run's number is its count
        self._finished = 0  # number of the latest finished run
        self._outcome: IngestReport | IngestFailed | None = None  # of that run
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.running: str | None = None  # the trigger of the run in progress, if any
        self.runs = 0
        self.failures = 0
        self.last: dict | None = None
        self._last_refused: list[tuple[str, str]] | None = None

    def run(self, trigger: str, *, rebuild: bool = False) -> IngestReport:
        """An incremental ingest that starts after this call (waiting for one in progress),
        or a rebuild. Returns its report; raises IngestFailed."""
        with self._cond:
            wanted = self._started + 1  # any run numbered from here on starts after now
            while True:
                if self._finished >= wanted and not rebuild:
                    outcome = self._outcome  # a run that started after we asked: ours too
                    break
                if self.running is None:
                    self._started += 1
                    number, self.running = self._started, trigger
                    outcome = None
                    break
                self._cond.wait()
        if outcome is None:
            try:
                outcome = self._run(trigger, rebuild)
                if isinstance(outcome, IngestReport):
                    outcome.run = number
            finally:
                with self._cond:
                    self.running = None
                    self._finished, self._outcome = number, outcome
                    self._cond.notify_all()
        if isinstance(outcome, IngestFailed):  # a fresh exception per caller: they may share it
            raise IngestFailed(str(outcome), outcome.status) from outcome.__cause__
        return outcome

    def _run(self, trigger: str, rebuild: bool) -> IngestReport | IngestFailed:
        started = time.time()
        try:
            report = run_ingest(self.settings, self.embedder, rebuild=rebuild, progress=False)
        except Exception as exc:
            self.failures += 1
            error = str(exc) if isinstance(exc, IngestError) else f"{type(exc).__name__}: {exc}"
            self.last = {"trigger": trigger, "started_at": started, "ok": False, "error": error}
            if isinstance(exc, IngestError):
                log.error("ingest (%s) failed: %s", trigger, exc)
            else:
                log.error("ingest (%s) failed", trigger, exc_info=exc)
            failed = IngestFailed(error, _status_of(exc))
            failed.__cause__ = exc
            return failed
        self.runs += 1
        self.last = {"trigger": trigger, "started_at": started, "ok": True,
                     "seconds": round(report.seconds, 3), "generation": report.generation,
                     **{k: len(getattr(report, k)) for k in
                        ("added", "changed", "deleted", "failed", "deferred")}}
        try:
            self.index.current()  # serve the new generation from now on
        except IndexNotReady:
            pass
        except Exception:  # the commit stands; the next question retries the switch
            log.exception("switching to generation %d failed", report.generation)
        # A line per run that did something, not per event that changed nothing.
        if (report.added or report.changed or report.deleted or report.deferred
                or report.failed != self._last_refused or trigger != "watch"):
            log.info("ingest (%s): %d added, %d changed, %d deleted, %d refused, %d deferred; "
                     "generation %d, %.2f s", trigger, len(report.added), len(report.changed),
                     len(report.deleted), len(report.failed), len(report.deferred),
                     report.generation, report.seconds)
        self._last_refused = report.failed
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
            kwargs={"on_ready": lambda: self._run_quietly("catch-up"),
                    "quiet_ms": self.quiet_ms})
        self._thread.start()
        log.info("watching %s for changes", self.settings.corpus_dir)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching. An ingest in progress is left to finish (or to die with the
        process: a killed ingest leaves the last commit serving)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("an ingest is still running at shutdown; the index keeps its last "
                            "commit")
            else:
                self._thread = None

    @property
    def watching(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict:
        return {"watching": self.watching, "running": self.running, "runs": self.runs,
                "failures": self.failures, "last": self.last}
