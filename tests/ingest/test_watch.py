"""The corpus watcher with real file-system events (inotify through watchfiles)."""
from __future__ import annotations

import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingest.watch import watch_corpus


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.times: list[float] = []  # when each change call was made
        self.event = threading.Event()

    def ready(self) -> None:
        self.calls.append(("ready", []))
        self.event.set()

    def change(self, paths: list[str]) -> None:
        self.calls.append(("change", [Path(p).name for p in paths]))
        self.times.append(time.monotonic())
        self.event.set()

    def wait(self, kind: str, count: int = 1, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(k == kind for k, _ in self.calls) < count:
            assert time.monotonic() < deadline, f"no {kind!r} call: {self.calls}"
            time.sleep(0.02)

    def changes(self) -> list[list[str]]:
        return [p for k, p in self.calls if k == "change"]


@contextmanager
def watching(corpus: Path, quiet_ms: int = 300):
    """A watcher on `corpus` on its own thread, ready; (corpus, recorder)."""
    rec, stop = Recorder(), threading.Event()
    thread = threading.Thread(
        target=watch_corpus, args=(corpus, corpus / "index", rec.change, stop),
        kwargs={"on_ready": rec.ready, "quiet_ms": quiet_ms, "retry_s": 0.2}, daemon=True)
    thread.start()
    rec.wait("ready")
    try:
        yield corpus, rec
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive(), "the watcher did not stop"


@pytest.fixture
def watched(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with watching(corpus) as w:
        yield w


def settle(seconds: float = 1.2) -> None:
    """Longer than the quiet period plus one watch step."""
    time.sleep(seconds)


def test_a_file_written_in_pieces_is_one_change_after_the_last_piece(tmp_path):
    # A quiet period far above the 100 ms between pieces, so a loaded machine's slower
    # writes still arrive within it; what is checked is the order of events, not a duration.
    (tmp_path / "corpus").mkdir()
    with watching(tmp_path / "corpus", quiet_ms=2000) as (corpus, rec):
        with open(corpus / "doc.md", "w") as f:
            for _ in range(6):
                f.write("Some text of a document being copied in. " * 50)
                f.flush()
                time.sleep(0.1)
            assert rec.changes() == [], "handed on while the file was still being written"
            finished = time.monotonic()
        rec.wait("change")
        settle(2.5)
        assert rec.changes() == [["doc.md"]]  # one change...
        assert rec.times[0] > finished  # ...handed on after the last piece was written


def test_temporaries_hidden_files_and_the_index_raise_no_change(watched):
    corpus, rec = watched
    for name in (".doc.md.swp", "doc.md~", "4913", "#doc.md#", "doc.md.part"):
        (corpus / name).write_text("temporary")
    (corpus / ".git").mkdir()
    (corpus / ".git" / "HEAD").write_text("ref")
    (corpus / "index").mkdir()  # the index inside the corpus: its writes are not documents
    (corpus / "index" / "index.db").write_text("x")
    settle()
    assert rec.changes() == []
    (corpus / "real.md").write_text("a document")  # the watcher is alive: this one counts
    rec.wait("change")
    assert rec.changes() == [["real.md"]]


def test_a_long_download_beside_a_document_does_not_hold_it_back(watched):
    corpus, rec = watched
    (corpus / "a.md").write_text("a document")
    saved = time.monotonic()
    handed_on_during_download = False
    with open(corpus / "big.pdf.part", "wb") as part:  # a browser download, for up to 30 s
        while time.monotonic() - saved < 30:
            part.write(b"x" * 4096)
            part.flush()
            time.sleep(0.05)
            if rec.changes():
                handed_on_during_download = True  # the download is still being written
                break
    assert handed_on_during_download, "the document waited for the download to finish"
    assert rec.changes() == [["a.md"]]


def test_folders_with_temporary_looking_names_are_watched(watched, tmp_path):
    corpus, rec = watched
    outside = tmp_path / "2024"
    outside.mkdir()
    (outside / "plan.md").write_text("the 2024 plan")
    outside.rename(corpus / "2024")  # a folder moved in: one event, for the folder
    rec.wait("change")
    assert rec.changes() == [["2024"]]
    (corpus / "2024").rename(tmp_path / "2024-back")  # and moved out again
    rec.wait("change", 2)


def test_an_editor_save_by_rename_is_one_change_naming_the_document(watched):
    corpus, rec = watched
    (corpus / "notes.md").write_text("first version")
    rec.wait("change")
    tmp = corpus / ".notes.md.tmp-123"
    tmp.write_text("second version")
    tmp.replace(corpus / "notes.md")
    rec.wait("change", 2)
    settle()
    assert rec.changes() == [["notes.md"], ["notes.md"]]


def test_deletes_and_new_folders_are_changes(watched):
    corpus, rec = watched
    (corpus / "a.md").write_text("a")
    rec.wait("change")
    (corpus / "a.md").unlink()
    rec.wait("change", 2)
    (corpus / "sub").mkdir()
    time.sleep(0.2)  # the watch is added to the new folder
    (corpus / "sub" / "b.md").write_text("b")
    rec.wait("change", 3)
    assert "b.md" in rec.changes()[-1]


def test_a_replaced_corpus_folder_is_watched_again_and_caught_up(watched):
    corpus, rec = watched
    shutil.rmtree(corpus)
    time.sleep(0.5)
    corpus.mkdir()
    rec.wait("ready", 2)  # re-established: the caller catches up with a full run
    (corpus / "back.md").write_text("back")
    deadline = time.monotonic() + 15
    while not any("back.md" in c for c in rec.changes()):
        assert time.monotonic() < deadline, rec.calls
        time.sleep(0.05)
