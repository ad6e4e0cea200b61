"""Incremental sync: added, changed, unchanged, deleted and failed files, in one commit each run,
on both stores (the `settings` here is an empty index on SQLite, then on PostgreSQL; the CLI's
own behaviour is tested on SQLite only)."""
from __future__ import annotations

import json
import subprocess

import pytest

from ingest.errors import CorpusNotFoundError, IndexMismatchError
from contextlib import closing

from ingest.settings import IngestSettings
from ingest.store import open_reader
from ingest.store.records import IndexParams
from ingest.sync import run_ingest
from tests.helpers import PYTHON, ROOT, store_state, subprocess_env, write
from tests.postgres import drop_schema, new_schema

SQLITE_ONLY = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    extra = {}
    if request.param == "postgres":
        extra = {"store": "postgres", "database_url": request.getfixturevalue("pg_url"),
                 "database_schema": new_schema()}
    made = IngestSettings(corpus_dir=corpus, index_dir=tmp_path / "index", embedder="hashing",
                          **extra)
    yield made
    if made.store == "postgres":
        drop_schema(made.database_url, made.database_schema)


def state(settings: IngestSettings) -> dict:
    return store_state(settings)


def test_add_change_delete_unchanged(settings, hashing_embedder):
    c = settings.corpus_dir
    write(c, "a.md", "# Alpha\n\nThe alpha document mentions zebras.\n")
    write(c, "b.txt", "Bravo talks about yaks and their fur.\n")
    write(c, "sub/c.md", "# Charlie\n\nCharlie covers walruses.\n")
    r1 = run_ingest(settings, hashing_embedder)
    assert sorted(r1.added) == ["a.md", "b.txt", "sub/c.md"]
    assert r1.chunks_added == 3 and r1.embedded == 3 and r1.generation == 1

    r2 = run_ingest(settings, hashing_embedder)
    assert r2.embedded == 0 and r2.chunks_added == 0 and r2.generation == 1
    assert sorted(r2.unchanged) == ["a.md", "b.txt", "sub/c.md"]

    write(c, "a.md", "# Alpha\n\nThe alpha document now mentions giraffes instead.\n")
    (c / "b.txt").unlink()
    write(c, "d.html", "<h1>Delta</h1><p>Delta is about otters.</p>")
    r3 = run_ingest(settings, hashing_embedder)
    assert (r3.added, r3.changed, r3.deleted) == (["d.html"], ["a.md"], ["b.txt"])
    assert r3.unchanged == ["sub/c.md"]
    assert r3.chunks_removed == 2 and r3.chunks_added == 2 and r3.generation == 2

    with closing(open_reader(settings)) as reader, closing(reader.open()) as snap:
        assert [d.path for d in snap.documents()] == ["a.md", "d.html", "sub/c.md"]
        hits = [c.path for c in snap.chunks([i for i, _ in snap.search_lexical("giraffes", 5)])]
        assert hits == ["a.md"]
        assert snap.search_lexical("zebras", 5) == []  # the old version is gone
        assert snap.search_lexical("yaks", 5) == []  # the deleted file is gone
        assert snap.chunk_count == len(snap.chunk_ids()) == 3
        vec = hashing_embedder.embed(["Delta is about otters."])[0]
        best = snap.chunks([snap.search_dense(vec, 1)[0][0]])[0]
        assert best.path == "d.html" and best.text.endswith("Delta is about otters.")


def test_failed_files_are_reported_and_the_rest_ingested(settings, hashing_embedder):
    c = settings.corpus_dir
    write(c, "good.md", "# Good\n\nUseful text about penguins.\n")
    write(c, "empty.txt", "")
    write(c, "blank.md", "  \n\n\t \n")
    write(c, "binary.txt", bytes(range(256)) * 4)
    write(c, "broken.pdf", b"%PDF-1.4\n1 0 obj garbage")
    write(c, "notes.odt", b"PK\x03\x04 not supported")
    settings = settings.model_copy(update={"max_file_bytes": 10_000})
    write(c, "huge.txt", "word " * 5000)
    report = run_ingest(settings, hashing_embedder)
    assert report.added == ["good.md"]
    failed = dict(report.failed)
    assert set(failed) == {"empty.txt", "blank.md", "binary.txt", "broken.pdf", "notes.odt",
                           "huge.txt"}
    assert all("\n" not in reason and reason for reason in failed.values())
    assert "unsupported" in failed["notes.odt"] and "limit" in failed["huge.txt"]
    assert state(settings)["failures"] == sorted(failed.items())


def test_file_that_becomes_unreadable_leaves_the_index(settings, hashing_embedder):
    c = settings.corpus_dir
    write(c, "x.md", "# X\n\nX is about narwhals.\n")
    run_ingest(settings, hashing_embedder)
    write(c, "x.md", b"\x00\x01\x02 binary now")
    report = run_ingest(settings, hashing_embedder)
    assert [p for p, _ in report.failed] == ["x.md"] and report.deleted == []
    assert report.chunks_removed == 1
    assert state(settings)["docs"] == {}


def test_same_text_in_two_files_is_embedded_once(settings, hashing_embedder):
    write(settings.corpus_dir, "one.txt", "Identical text about lemurs.")
    write(settings.corpus_dir, "two.txt", "Identical text about lemurs.")
    report = run_ingest(settings, hashing_embedder)
    assert report.chunks_added == 2 and report.embedded == 1
    assert state(settings)["dense"] == 2


def test_rebuild_reindexes_everything(settings, hashing_embedder):
    write(settings.corpus_dir, "a.md", "# A\n\nApples.\n")
    run_ingest(settings, hashing_embedder)
    report = run_ingest(settings, hashing_embedder, rebuild=True)
    assert report.changed == ["a.md"] and report.chunks_removed == 1 and report.generation == 2


def test_model_mismatch_is_refused_with_the_fix(settings, hashing_embedder):
    write(settings.corpus_dir, "a.md", "# A\n\nApples.\n")
    run_ingest(settings, hashing_embedder)
    other = settings.model_copy(update={"chunk_tokens": 100})
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        run_ingest(other, hashing_embedder)
    expect = IndexParams("sentence-transformers/all-MiniLM-L6-v2", 200, 32)
    with pytest.raises(IndexMismatchError, match="model_id"):
        with closing(open_reader(settings, expect)) as reader:
            reader.open()
    # the fix the message names works, and afterwards the new parameters are accepted
    assert run_ingest(other, hashing_embedder, rebuild=True).changed == ["a.md"]
    assert run_ingest(other, hashing_embedder).unchanged == ["a.md"]


def test_missing_corpus_folder(tmp_path, hashing_embedder):
    s = IngestSettings(corpus_dir=tmp_path / "nope", index_dir=tmp_path / "i", embedder="hashing")
    with pytest.raises(CorpusNotFoundError, match="create it"):
        run_ingest(s, hashing_embedder)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "ingest", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=subprocess_env(**env))


@SQLITE_ONLY
def test_cli_json_report(settings):
    c = settings.corpus_dir
    write(c, "a.md", "# A\n\nAardvarks dig burrows.\n")
    write(c, "bad.pdf", b"not a pdf")
    args = ("--corpus", str(c), "--index", str(settings.index_dir), "--json")
    first = run_cli(*args, RAG_EMBEDDER="hashing")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["files"] == {"added": ["a.md"], "changed": [], "unchanged": [], "deleted": [],
                               "failed": [{"path": "bad.pdf", "reason": report["files"]["failed"][0]["reason"]}],
                               "deferred": []}
    assert report["chunks"] == {"added": 1, "removed": 0, "embedded": 1, "truncated": 0}
    assert isinstance(report["seconds"], float)
    second = json.loads(run_cli(*args, RAG_EMBEDDER="hashing").stdout)
    assert second["files"]["unchanged"] == ["a.md"] and second["chunks"]["embedded"] == 0


@SQLITE_ONLY
def test_cli_table_and_errors(settings):
    write(settings.corpus_dir, "a.md", "# A\n\nAardvarks.\n")
    args = ("--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir))
    out = run_cli(*args, RAG_EMBEDDER="hashing")
    assert out.returncode == 0 and "added" in out.stdout and "a.md" in out.stdout
    again = run_cli(*args, RAG_EMBEDDER="hashing")
    assert "Index unchanged" in again.stdout and "0 chunks embedded" in again.stdout
    missing = run_cli("--corpus", str(settings.corpus_dir / "nope"), "--index",
                      str(settings.index_dir), RAG_EMBEDDER="hashing")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad = run_cli(*args, RAG_EMBEDDER="hashing", RAG_CHUNK_OVERLAP="150")
    assert bad.returncode == 2 and "RAG_CHUNK_OVERLAP" in bad.stderr
    # valid on their own, but the model's window caps the size at 254: still a clear message
    capped = run_cli("--corpus", str(settings.corpus_dir), "--index",
                     str(settings.index_dir.with_name("other")), RAG_EMBEDDER="hashing",
                     RAG_CHUNK_TOKENS="1000", RAG_CHUNK_OVERLAP="200")
    assert capped.returncode == 2 and "254" in capped.stderr and "Traceback" not in capped.stderr
    mismatch = run_cli(*args, RAG_EMBEDDER="hashing", RAG_CHUNK_TOKENS="120")
    assert mismatch.returncode == 2 and "--rebuild" in mismatch.stderr


@SQLITE_ONLY
def test_a_second_ingest_waits_for_the_first(settings):
    """Two ingests never run on one index at once: the second waits for the lock."""
    from ingest.store.sqlite.lock import ingest_lock

    write(settings.corpus_dir, "a.md", "# A\n\nAardvarks.\n")
    args = ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "--json"]
    with ingest_lock(settings.index_dir):
        proc = subprocess.Popen([PYTHON, "-m", "ingest", *args], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=subprocess_env(RAG_EMBEDDER="hashing"))
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "waiting for another ingest" in err
    assert json.loads(out)["files"]["added"] == ["a.md"]


@SQLITE_ONLY
@pytest.mark.slow
def test_changing_embedder_needs_a_rebuild(settings):
    """hashing -> sentence-transformers (onnx-int8, the default) -> the same model on torch,
    through the CLI: each change refused, then rebuilt on request."""
    write(settings.corpus_dir, "a.md", "# A\n\nAardvarks dig burrows.\n")
    args = ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "--json"]
    assert run_cli(*args, RAG_EMBEDDER="hashing").returncode == 0
    refused = run_cli(*args)
    assert refused.returncode == 2 and "all-MiniLM-L6-v2" in refused.stderr
    assert "--rebuild" in refused.stderr
    rebuilt = run_cli(*args, "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["chunks"]["embedded"] == 1
    on_torch = run_cli(*args, RAG_EMBED_BACKEND="torch")
    assert on_torch.returncode == 2 and "onnx-int8:" in on_torch.stderr
    rebuilt = run_cli(*args, "--rebuild", RAG_EMBED_BACKEND="torch")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["chunks"]["embedded"] == 1


def test_unchanged_corpus_never_loads_the_model(settings, hashing_embedder):
    """Nothing to chunk or embed: the embedder is not even asked for its tokenizer."""
    write(settings.corpus_dir, "a.md", "# A\n\nAardvarks.\n")
    run_ingest(settings, hashing_embedder)

    class Untouchable:
        model_id = hashing_embedder.model_id

        def __getattr__(self, name):
            raise AssertionError(f"the model was used ({name}) for an unchanged corpus")

    report = run_ingest(settings, Untouchable())
    assert report.unchanged == ["a.md"] and report.embedded == 0


def _scan_then(action):
    """scan_corpus, followed at once by `action()`: a writer acting between the scan and the
    read of a run."""
    from ingest import sync

    real = sync.scan_corpus

    def scan(corpus):
        files = real(corpus)
        action()
        return files
    return scan


def test_a_file_written_while_the_run_reads_it_keeps_its_indexed_version(
        settings, hashing_embedder, monkeypatch):
    from ingest import sync

    c = settings.corpus_dir
    write(c, "a.md", "# A\n\nThe first version mentions otters.\n")
    write(c, "steady.md", "# Steady\n\nNothing changes here.\n")
    run_ingest(settings, hashing_embedder)
    before = state(settings)
    write(c, "a.md", "# A\n\nThe second version mentions herons")  # a writer is midway
    write(c, "new.md", "# New\n\nHalf of a new")
    monkeypatch.setattr(sync, "scan_corpus", _scan_then(lambda: [
        (c / name).open("a").write(" and more text.\n") for name in ("a.md", "new.md")]))
    report = run_ingest(settings, hashing_embedder)
    assert sorted(report.deferred) == ["a.md", "new.md"]
    assert not (report.added or report.changed or report.deleted or report.failed)
    assert state(settings) == before  # nothing half-written was indexed
    monkeypatch.undo()
    again = run_ingest(settings, hashing_embedder)  # the writer is done: the next run takes it
    assert again.changed == ["a.md"] and again.added == ["new.md"] and not again.deferred


def test_a_file_gone_between_scan_and_read_is_kept_until_the_next_run(settings, hashing_embedder,
                                                                     monkeypatch):
    """An editor saving by rename makes a file vanish for a moment: an indexed file keeps its
    version (deferred, not failed, not deleted); the next run sees whether it came back."""
    from ingest import sync

    c = settings.corpus_dir
    write(c, "a.md", "# A\n\nAardvarks.\n")
    write(c, "b.md", "# B\n\nBadgers.\n")
    run_ingest(settings, hashing_embedder)
    before = state(settings)
    write(c, "b.md", "# B\n\nBadgers, edited.\n")
    write(c, "new.md", "# New\n\nNewts.\n")
    monkeypatch.setattr(sync, "scan_corpus", _scan_then(
        lambda: [(c / n).unlink() for n in ("b.md", "new.md")]))
    report = run_ingest(settings, hashing_embedder)
    assert report.deferred == ["b.md"] and not (report.deleted or report.failed or report.added)
    assert state(settings) == before
    monkeypatch.undo()
    assert run_ingest(settings, hashing_embedder).deleted == ["b.md"]  # it did not come back
    assert list(state(settings)["docs"]) == ["a.md"]


def test_a_rebuild_refuses_a_file_that_changes_while_read(settings, hashing_embedder,
                                                          monkeypatch):
    from ingest import sync

    c = settings.corpus_dir
    write(c, "a.md", "# A\n\nAardvarks.\n")
    write(c, "b.md", "# B\n\nBadgers.\n")
    run_ingest(settings, hashing_embedder)
    monkeypatch.setattr(sync, "scan_corpus", _scan_then(
        lambda: (c / "b.md").open("a").write("More badgers.\n")))
    report = run_ingest(settings, hashing_embedder, rebuild=True)
    assert [p for p, _ in report.failed] == ["b.md"] and "changed while" in report.failed[0][1]
    assert not report.deferred
    assert list(state(settings)["docs"]) == ["a.md"]
