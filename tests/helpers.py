"""Helpers shared by the test modules (no test module imports another): paths, the environment
of a child process, writing corpus files, reading what an index holds, checking citations, the
app in-process and a fake failing LLM."""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from app.errors import GeneratorFailed
    from app.service import RagService
    from app.settings import Settings
    from app.sources import Source

ROOT = Path(__file__).resolve().parent.parent
STARTER_CORPUS = ROOT / "corpus"
PYTHON = sys.executable

SMALL_CORPUS = {  # the in-process API tests' corpus (tests/app/api/conftest.py indexes it)
    "kb/refunds.md": "# Refunds\n\nAnnual plans can be refunded in full within 30 days of "
                     "purchase. Monthly plans can be cancelled at any time.\n",
    "kb/uptime.txt": "The Business plan commits to 99.9% monthly uptime, measured per "
                     "calendar month.\n",
    "guides/cafe.md": "# Lunch\n\nCafé Trésor serves crêpes on Thursdays only.\n",
    "broken.pdf": b"this is not a pdf",
}
REFUND_QUESTION = "How long do I have to get a full refund on an annual plan?"
STARTER_KEY = "sk-test-7f3c1e0b9d"  # the key of the shared starter service (conftest.py)
OFF_TOPIC = "What is the boiling point of tungsten in kelvin?"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child `python -m ingest`: this interpreter's, no RAG_ leftovers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def write(corpus: Path, rel: str, text: str | bytes) -> Path:
    """Write a corpus file (sub-folders made as needed)."""
    path = corpus / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def state(index_dir: Path, save_dense: bool = True) -> dict:
    """Everything a reader can see, order-independent: documents and their chunks' text."""
    from ingest.store.sqlite.snapshot import SqliteSnapshot

    with SqliteSnapshot.open(index_dir, save_dense=save_dense) as snap:
        docs = {d.path: d.sha256 for d in snap.documents()}
        chunks = sorted((c.path, c.ordinal, c.start, c.end, c.text)
                        for c in snap.chunks(snap.chunk_ids()))
        return {"docs": docs, "chunks": chunks, "failures": [f[:2] for f in snap.failures()],
                "dense": snap.dense.ntotal}


def store_state(settings) -> dict:
    """`state` for an index on any store, read through the reader seam (writes nothing)."""
    from contextlib import closing

    from ingest.store import open_reader

    with closing(open_reader(settings)) as reader, closing(reader.open()) as snap:
        docs = {d.path: d.sha256 for d in snap.documents()}
        chunks = sorted((c.path, c.ordinal, c.start, c.end, c.text)
                        for c in snap.chunks(snap.chunk_ids()))
        return {"docs": docs, "chunks": chunks, "failures": [f[:2] for f in snap.failures()],
                "dense": snap.chunk_count}


def open_with_memory_index(open_snapshot: Callable, previous=None, wait_s: float = 60.0):
    """A SQLite snapshot (`open_snapshot` is a reader's `open`) taken once the reader's
    in-memory BM25 index of its commit is built: snapshots opened before that rank by FTS5."""
    deadline = time.monotonic() + wait_s
    while True:
        snap = open_snapshot(previous)
        if snap.lexical is not None or time.monotonic() > deadline:
            assert snap.lexical is not None, "the in-memory BM25 index was never built"
            return snap
        snap.close()
        time.sleep(0.005)


def assert_citations_are_exact(corpus: Path, citations: list[dict]) -> None:
    """Every citation's text is exactly the document's extracted text between start and end."""
    from ingest.loaders import load

    for c in citations:
        doc = load(corpus / c["path"], (corpus / c["path"]).read_bytes())
        assert doc.text[c["start"]:c["end"]] == c["text"], c["path"]


@contextmanager
def serving(settings: "Settings", service: "RagService | None" = None) -> Iterator["TestClient"]:
    """The app in-process on these settings (or around this service), its lifespan running:
    FastAPI's TestClient calls it over ASGI."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    # As a browser on the default loopback service sends it (not TestClient's "testserver")
    with TestClient(create_app(settings, service), base_url="http://127.0.0.1") as client:
        yield client


class FailingGenerator:
    """A fake LLM backend that fails the way it is told: at once, or after `pieces`."""

    name = "fake"
    model = "fake-1"

    def __init__(self, error: "GeneratorFailed", pieces: Sequence[str] = ()) -> None:
        self.error, self.pieces = error, list(pieces)

    def warm_up(self) -> None:
        return None

    def close(self) -> None:
        return None

    def generate(self, question: str, sources: Sequence["Source"], deadline=None,
                 history=()) -> str:
        raise self.error

    def stream(self, question: str, sources: Sequence["Source"], deadline=None, history=()):
        yield from self.pieces
        raise self.error


def sse(response) -> list[tuple[str | None, str]]:
    """The (event, data) pairs of a text/event-stream body."""
    events, event = [], None
    for line in response.text.splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            events.append((event, line[6:]))
            event = None
    return events
