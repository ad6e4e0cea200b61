"""Copying an index between stores (ingest/copy.py, `python -m ingest --copy-to URL`): documents,
chunks, vectors and refused files go across as they are stored, the generation and index_id are
kept, nothing is embedded, and the next ingest against the copy finds nothing to do. Real stores
on both sides: SQLite folders, and schemas on the session's real PostgreSQL."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
from contextlib import closing
from pathlib import Path

import numpy as np
import psycopg
import pytest

from ingest.cli import main
from ingest.copy import copy_index
from ingest.embedders import HashingEmbedder
from ingest.errors import CopyRefusedError, IndexNotFoundError
from ingest.settings import IngestSettings
from ingest.store import open_reader, open_store
from ingest.sync import run_ingest
from tests.helpers import PYTHON, ROOT, SMALL_CORPUS, STARTER_CORPUS, subprocess_env, write
from tests.postgres import drop_schema, new_schema, pg_env

SHARED = "# Shared\n\nThis paragraph is in two files, so its two chunks share one vector.\n"
QUESTIONS = ["How long do I have to get a full refund?", "HNSW graph parameters and recall",
             "single sign-on with SAML"]


class NoisyEmbedder(HashingEmbedder):
    """Hashing vectors plus random noise, under a model id that no settings can build: a vector
    in a copy equal to the source's was copied; nothing could have recomputed it."""

    model_id = "copy-test-noisy-v1"

    def __init__(self) -> None:
        super().__init__()
        self.embedded, self._rng = 0, np.random.default_rng()

    def embed(self, texts, *, urgent: bool = False) -> np.ndarray:
        self.embedded += len(texts)
        out = super().embed(texts) + self._rng.normal(0, 0.05, (len(texts), self.dim))
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def corpus(tmp_path) -> Path:
    """The starter corpus (markdown, text, HTML, PDF with pages), two files with the same
    text, a note that changes, and a refused file."""
    corpus = tmp_path / "corpus"
    shutil.copytree(STARTER_CORPUS, corpus)
    write(corpus, "extra/shared-1.md", SHARED)
    write(corpus, "extra/shared-2.md", SHARED)
    write(corpus, "extra/note.txt", "First version of the note.\n")
    write(corpus, "broken.pdf", b"not a pdf")
    return corpus


@pytest.fixture
def schemas(pg_url):
    """Makes schema names on the test server; drops them after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(new_schema())
        return made[-1]

    yield make
    for schema in made:
        drop_schema(pg_url, schema)


def on_sqlite(corpus: Path, folder: Path) -> IngestSettings:
    return IngestSettings(corpus_dir=corpus, index_dir=folder, embedder="hashing")


def on_postgres(corpus: Path, url: str, schema: str) -> IngestSettings:
    return IngestSettings(corpus_dir=corpus, index_dir=corpus.parent / "not-used", embedder="hashing",
                          store="postgres", database_url=url, database_schema=schema)


def seen(settings: IngestSettings) -> dict:
    """What a reader of the index sees, in terms that do not depend on the store (chunk ids
    do): identity, documents, chunks, refused files, dense and lexical results."""
    probes = HashingEmbedder().embed(QUESTIONS)
    with closing(open_reader(settings)) as reader, closing(reader.open()) as snap:
        chunks = snap.chunks(snap.chunk_ids())
        name = {c.id: (c.path, c.ordinal) for c in chunks}
        return {
            "index": (snap.generation, snap.index_id, snap.document_count, snap.chunk_count),
            "documents": sorted(snap.documents(), key=lambda d: d.path),
            "chunks": sorted((c.path, c.ordinal, c.start, c.end, c.heading, c.page, c.text)
                             for c in chunks),
            "failures": sorted(snap.failures()),
            "dense": [[name[i] for i, _ in snap.search_dense(v, 5)] for v in probes],
            "lexical": [[name[i] for i, _ in snap.search_lexical(q, 5)] for q in QUESTIONS],
        }


def vectors(settings: IngestSettings) -> dict[str, np.ndarray]:
    """Every stored vector of the index, by key, read through its store."""
    with open_store(settings, None) as store:
        return {k: v for b in store.stored_batches() for k, v in zip(b.keys, b.vectors)}


def test_sqlite_to_postgres_and_back_keeps_everything_and_embeds_nothing(corpus, tmp_path,
                                                                         pg_url, schemas):
    source, embedder = on_sqlite(corpus, tmp_path / "index"), NoisyEmbedder()
    run_ingest(source, embedder)
    write(corpus, "extra/note.txt", "Second version of the note.\n")
    assert run_ingest(source, embedder).generation == 2  # a number that means something
    before, stored = seen(source), vectors(source)
    assert before["failures"][0].path == "broken.pdf" and any(c[5] for c in before["chunks"])

    postgres = on_postgres(corpus, pg_url, schemas())
    there = copy_index(source, postgres, chunks_per_batch=50)
    back = on_sqlite(corpus, tmp_path / "back")
    again = copy_index(postgres, back, chunks_per_batch=7)  # many small batches

    documents, chunks = before["index"][2:]
    for report in (there, again):
        assert (report.documents, report.chunks, report.refused) == (documents, chunks, 1)
        assert (report.generation, report.index_id) == before["index"][:2]
        assert report.vectors == len(stored) == chunks - 1  # the shared text: one vector
    for copy in (postgres, back):
        assert seen(copy) == before
        copied = vectors(copy)
        assert copied.keys() == stored.keys()
        assert all(np.array_equal(copied[k], stored[k]) for k in stored)  # bit for bit
    done = embedder.embedded
    for copy in (postgres, back):  # the user's proof: the same corpus, nothing to do
        rerun = run_ingest(copy, embedder)
        assert (rerun.embedded, rerun.added, rerun.changed, rerun.deleted) == (0, [], [], [])
        assert len(rerun.unchanged) == documents and rerun.generation == 2
        assert seen(copy) == before
    assert embedder.embedded == done


def test_a_batch_holds_whole_documents_and_about_the_vectors_asked(corpus, tmp_path):
    source = on_sqlite(corpus, tmp_path / "index")
    run_ingest(source, HashingEmbedder())
    with open_store(source, None) as store:
        batches = list(store.stored_batches(chunks_per_batch=20))
    assert len(batches) > 5
    for b in batches:
        largest = max(len(d.chunks) for d in b.documents)
        assert len(b.keys) == len(b.vectors) <= max(20, largest)
        assert b.vectors.dtype == np.float32
        assert {k for d in b.documents for k in d.vec_keys} == set(b.keys)
    paths = [d.path for b in batches for d in b.documents]
    assert len(paths) == len(set(paths)) == len(seen(source)["documents"])


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path) -> IngestSettings:
    """An index on the target store under test, holding one document of another corpus."""
    other = tmp_path / "other"
    write(other, "other.md", "# Other\n\nA document of another corpus.\n")
    if request.param == "sqlite":
        settings = on_sqlite(other, tmp_path / "target")
    else:
        settings = on_postgres(other, request.getfixturevalue("pg_url"),
                               request.getfixturevalue("schemas")())
    run_ingest(settings, HashingEmbedder())
    return settings


def test_a_target_that_holds_an_index_is_refused_unless_replace(corpus, tmp_path, target):
    source = on_sqlite(corpus, tmp_path / "index")
    run_ingest(source, HashingEmbedder())
    before = seen(target)
    with pytest.raises(CopyRefusedError, match=r"already holds an index \(1 documents\).*--replace"):
        copy_index(source, target)
    assert seen(target) == before  # nothing written
    report = copy_index(source, target, replace=True)
    assert report.replaced == 1
    assert seen(target) == seen(source)


def test_a_target_built_with_other_settings_is_refused_unless_replace(corpus, tmp_path, target):
    source = on_sqlite(corpus, tmp_path / "index").model_copy(update={"chunk_tokens": 120})
    run_ingest(source, HashingEmbedder())
    before = seen(target)
    with pytest.raises(CopyRefusedError, match="other settings than the source's"):
        copy_index(source, target)
    assert seen(target) == before
    copy_index(source, target, replace=True)
    assert seen(target) == seen(source)
    rerun = run_ingest(target.model_copy(update={"corpus_dir": corpus, "chunk_tokens": 120}),
                       HashingEmbedder())  # the copy carries the source's parameters
    assert rerun.embedded == 0 and not rerun.added


def test_no_source_index_is_an_error_and_creates_nothing(tmp_path, pg_url, schemas):
    corpus, schema = tmp_path / "corpus", schemas()
    nowhere, target = on_sqlite(corpus, tmp_path / "none"), on_sqlite(corpus, tmp_path / "t")
    with pytest.raises(IndexNotFoundError, match="no index in .*make ingest"):
        copy_index(nowhere, target)
    with pytest.raises(IndexNotFoundError, match="no index in .*make ingest"):
        copy_index(on_postgres(corpus, pg_url, schema), target)
    assert not (tmp_path / "none").exists() and not (tmp_path / "t").exists()
    with psycopg.connect(pg_url) as conn:
        assert not conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                                (schema,)).fetchone()[0]


def test_the_source_itself_is_refused(corpus, tmp_path, pg_url, schemas):
    source = on_sqlite(corpus, tmp_path / "index")
    run_ingest(source, HashingEmbedder())
    with pytest.raises(CopyRefusedError, match="is the source index itself"):
        copy_index(source, on_sqlite(corpus, tmp_path / "x" / ".." / "index"))
    postgres = on_postgres(corpus, pg_url, schemas())
    copy_index(source, postgres)
    with pytest.raises(CopyRefusedError, match="is the source index itself"):
        copy_index(postgres, postgres.model_copy())


@pytest.mark.parametrize("url, why", [
    ("mysql://db.example/rag", "not a store URL"),
    ("sqlite://host/index", "names a folder, not a host"),
    ("sqlite:", "no folder in"),
    ("sqlite:///somewhere?mode=ro", "takes no ?options"),
    ("postgresql://rag:hunter2@[::1/rag", "cannot parse the database URL"),
])
def test_a_bad_target_is_one_error_line_and_exit_2(url, why, tmp_path, capsys):
    code = main(["--index", str(tmp_path / "index"), "--copy-to", url])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert why in err and "hunter2" not in err
    assert not list(tmp_path.iterdir())  # nothing made, not even the source's folder


def test_a_file_is_not_an_index_folder(tmp_path, capsys):
    (tmp_path / "index.db").write_text("")
    assert main(["--copy-to", f"sqlite://{tmp_path / 'index.db'}"]) == 2
    assert "is a file: a sqlite URL names the index folder" in capsys.readouterr().err


def ingest_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "ingest", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=subprocess_env(**env))


NO_MODEL = {"RAG_EMBEDDER": "sentence-transformers", "RAG_EMBEDDING_MODEL": "/no/such/model"}


def test_the_command_copies_to_postgres_and_back_without_a_model(tmp_path, pg_url, schemas):
    corpus, index, back, schema = tmp_path / "corpus", tmp_path / "index", tmp_path / "back", \
        schemas()
    for rel, text in SMALL_CORPUS.items():
        write(corpus, rel, text)
    first = ingest_cli("--corpus", str(corpus), "--index", str(index), RAG_EMBEDDER="hashing")
    assert first.returncode == 0, first.stderr
    # The settings name a model that cannot load: a copy that tried to embed would fail.
    there = ingest_cli("--index", str(index), "--copy-to", pg_url, "--copy-to-schema", schema,
                       "--json", **NO_MODEL)
    assert there.returncode == 0, there.stderr
    report = json.loads(there.stdout)
    assert (report["documents"], report["refused"], report["generation"]) == (3, 1, 1)
    assert report["chunks"] == report["vectors"] > 0 and report["replaced"] == 0
    rerun = ingest_cli("--corpus", str(corpus), RAG_EMBEDDER="hashing", **pg_env(pg_url, schema))
    assert rerun.returncode == 0, rerun.stderr
    assert "Index unchanged: 3 files unchanged (1 still refused, see above), 0 chunks " \
           "embedded." in rerun.stdout
    home = ingest_cli("--copy-to", f"sqlite://{back}", **NO_MODEL, **pg_env(pg_url, schema))
    assert home.returncode == 0, home.stderr
    assert f"to {back} in " in home.stdout and "nothing was embedded" in home.stdout
    assert f"RAG_INDEX_DIR={back}" in home.stdout
    assert seen(on_sqlite(corpus, back)) == seen(on_sqlite(corpus, index))


@pytest.mark.parametrize("point", ["mid-copy", "before-commit"])
def test_a_killed_copy_leaves_the_target_as_it_was(point, corpus, tmp_path, target):
    source = on_sqlite(corpus, tmp_path / "index")
    run_ingest(source, HashingEmbedder())
    before = seen(target)
    url = (f"sqlite://{target.index_dir}" if target.store == "sqlite" else target.database_url)
    args = ["--index", str(source.index_dir), "--copy-to", url, "--replace"]
    if target.store == "postgres":
        args += ["--copy-to-schema", target.database_schema]
    killed = ingest_cli(*args, RAG_FAILPOINT=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert seen(target) == before
    again = ingest_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "It replaced the 1 documents the target held." in again.stdout
    assert seen(target) == seen(source)


def test_the_service_on_the_copy_answers_as_on_the_source(tmp_path, pg_url, schemas):
    from app.settings import Settings
    from tests.helpers import REFUND_QUESTION, serving

    corpus = tmp_path / "corpus"
    for rel, text in SMALL_CORPUS.items():
        write(corpus, rel, text)
    source = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", embedder="hashing",
                      watch=False, abstain_threshold=-1.0)  # hashing cosines are low
    run_ingest(source, HashingEmbedder())
    copy = source.model_copy(update={"store": "postgres", "database_url": pg_url,
                                     "database_schema": schemas()})
    copy_index(source, copy)
    answers = []
    for settings in (source, copy):
        with serving(settings) as client:
            asked = [client.post("/ask", json={"question": q}) for q in
                     (REFUND_QUESTION, "What does Café Trésor serve?", "uptime commitment")]
            assert all(r.status_code == 200 for r in asked)
            answers.append([(r.json()["answer"], [(c["path"], c["start"], c["end"], c["text"])
                                                  for c in r.json()["citations"]])
                            for r in asked])
            ready = client.get("/readyz").json()
            answers[-1].append((ready["index_generation"], ready["index_id"]))
    assert answers[0] == answers[1] and answers[0][0][1]  # cited, and the same on both
