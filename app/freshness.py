"""Keeping the index fresh from inside the service: the corpus watcher, POST /ingest, and the
catch-up run at start.

Every in-process ingest goes through `IngestRunner.run`, one at a time (a lock), and
`run_ingest` itself holds the index's lock (a file lock on SQLite, an advisory lock on
PostgreSQL), so an ingest started from another process or another replica (`make ingest`)
waits for ours and ours for it. After a run commits, the service switches to
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
from ingest.errors import (CorpusNotFoundError, IndexDamagedError, IndexMismatchError,
                           IndexStorageError, IndexUnavailableError, IngestError,
                           ModelUnavailableError)
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
    if isinstance(exc, (ModelUnavailableError, IndexStorageError, IndexDamagedError,
                        IndexUnavailableError)):
        return 503  # nothing the request can change: the disk, the folder, the model, the db
    return 500


RETRY_FIRST_S, RETRY_MAX_S = 1.0, 60.0  # a failed watcher ingest is retried, backing off


class IngestRunner:
    """Runs the service's ingests one at a time. Triggers that arrive while a run is going
    share the next run (which starts after they arrived, so it sees their changes): a burst
    of POST /ingest calls during a long run costs one more run, not one each; rebuild requests
    share the next rebuild the same way. A watcher or catch-up run that fails is retried with
    backoff until one succeeds, and a damaged index is rebuilt (moved aside first)."""

    def __init__(self, settings: IngestSettings, embedder: Embedder, index: IndexHolder, *,
                 quiet_ms: int = 300) -> None:
        self.settings = settings  # what run_ingest reads: the corpus, the index, chunking
        self.embedder = embedder
        self.index = index
        self.quiet_ms = quiet_ms  # the watcher's quiet period
        self._cond = threading.Condition()
        self._started = 0  # runs started so far; a run's number is its count
        # (number, outcome) of the latest finished run of any kind, and of a rebuild
        self._finished: dict[bool, tuple[int, IngestReport | IngestFailed | None]] = {
            False: (0, None), True: (0, None)}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry: threading.Timer | None = None
        self._retry_delay = RETRY_FIRST_S
        self.running: str | None = None  # the trigger of the run in progress, if any
        self.runs = 0
        self.failures = 0
        self.last: dict | None = None
        self._last_refused: list[tuple[str, str]] | None = None
        index.on_lost = self.recover

    def run(self, trigger: str, *, rebuild: bool = False) -> IngestReport:
        """An incremental ingest that starts after this call (waiting for one in progress),
        or a rebuild that does. Returns its report; raises IngestFailed."""
        with self._cond:
            wanted = self._started + 1  # any run numbered from here on starts after now
            while True:
                number, outcome = self._finished[rebuild]
                if number >= wanted:
                    break  # a run that started after we asked (a rebuild, if we want one)
                if self.running is None:
                    self._started += 1
                    number, outcome, self.running = self._started, None, trigger
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
                    self._finished[False] = (number, outcome)
                    if rebuild:
                        self._finished[True] = (number, outcome)
                    self._cond.notify_all()
        if isinstance(outcome, IngestFailed):  # a fresh exception per caller: they may share it
            raise IngestFailed(str(outcome), outcome.status) from outcome.__cause__
        return outcome

    def _run(self, trigger: str, rebuild: bool) -> IngestReport | IngestFailed:
        started = time.time()
        try:
            try:
                report = run_ingest(self.settings, self.embedder, rebuild=rebuild,
                                    progress=False)
            except IndexDamagedError as exc:
                if rebuild:
                    raise
                log.error("ingest (%s): %s; rebuilding it", trigger, exc)
                report = run_ingest(self.settings, self.embedder, rebuild=True, progress=False)
        except Exception as exc:
            return self._failed(trigger, started, exc)
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
        self._log_report(trigger, report)
        return report

    def _failed(self, trigger: str, started: float, exc: Exception) -> IngestFailed:
        self.failures += 1
        # An IngestError says what is wrong and what to do; anything else is a bug, whose
        # text (which may quote a path or a document) goes to the log only.
        error = str(exc) if isinstance(exc, IngestError) else (
            f"the ingest failed with an internal error ({type(exc).__name__}; the service "
            "log has the details)")
        self.last = {"trigger": trigger, "started_at": started, "ok": False, "error": error}
        cause = exc.__cause__ if isinstance(exc, (IndexStorageError, IndexDamagedError)) else None
        if isinstance(exc, IngestError):
            log.error("ingest (%s) failed: %s%s", trigger, exc,
                      f" ({type(cause).__name__}: {cause})" if cause else "")
        else:
            log.error("ingest (%s) failed", trigger, exc_info=exc)
        failed = IngestFailed(error, _status_of(exc))
        failed.__cause__ = exc
        return failed

    def _log_report(self, trigger: str, report: IngestReport) -> None:
        # A line per run that did something, not per event that changed nothing.
        if (report.added or report.changed or report.deleted or report.deferred
                or report.failed != self._last_refused or trigger != "watch"):
            log.info("ingest (%s): %d added, %d changed, %d deleted, %d refused, %d deferred; "
                     "generation %d, %.2f s", trigger, len(report.added), len(report.changed),
                     len(report.deleted), len(report.failed), len(report.deferred),
                     report.generation, report.seconds)
        self._last_refused = report.failed

    def _run_quietly(self, trigger: str, rebuild: bool = False) -> None:
        """A run nobody waits for (the watcher's, a retry, a recovery): a failure is logged
        and kept in `last` (shown by /readyz), and the run is retried with backoff."""
        try:
            self.run(trigger, rebuild=rebuild)
        except IngestFailed:
            self._schedule_retry()
            return
        with self._cond:
            self._retry_delay = RETRY_FIRST_S
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None

    def _schedule_retry(self) -> None:
        with self._cond:
            if self._stop.is_set() or self._retry is not None:
                return
            delay, self._retry_delay = self._retry_delay, min(self._retry_delay * 2, RETRY_MAX_S)
            self._retry = threading.Timer(delay, self._retry_now)
            self._retry.daemon = True
            self._retry.start()
        log.info("the failed ingest is retried in %.0f s", delay)

    def _retry_now(self) -> None:
        with self._cond:
            self._retry = None
        if not self._stop.is_set():
            self._run_quietly("retry")

    def recover(self, why: str) -> None:
        """The index being served is gone or damaged: build it again, on a thread of its own
        (requests are answered 503 meanwhile)."""
        log.error("the index is %s; ingesting to rebuild it", why)
        threading.Thread(target=self._run_quietly, args=("recover", why == "damaged"),
                         name="index-recover", daemon=True).start()

    def start_watching(self) -> None:
        """Watch the corpus on a thread: catch up once the watch is up, then ingest after each
        burst of changes."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=watch_corpus, name=f"corpus-watch-{self.settings.corpus_dir.name}",
            daemon=True,
            args=(self.settings.corpus_dir, self.settings.index_dir,
                  lambda paths: self._run_quietly("watch"), self._stop),
            kwargs={"on_ready": lambda: self._run_quietly("catch-up"),
                    "quiet_ms": self.quiet_ms})
        self._thread.start()
        log.info("watching %s for changes", self.settings.corpus_dir)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and retrying. An ingest in progress is left to finish (or to die
        with the process: a killed ingest leaves the last commit serving)."""
        self._stop.set()
        with self._cond:
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None
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
        with self._cond:
            retrying = self._retry is not None
        return {"watching": self.watching, "running": self.running, "runs": self.runs,
                "failures": self.failures, "last": self.last, "retrying": retrying}
