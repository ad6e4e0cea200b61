"""Crash safety: a real `python -m ingest` process is SIGKILLed mid-run (at named fail points and
at random instants). The previous index must still load and answer, and a rerun must converge
to exactly the state an uninterrupted run reaches."""
from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ingest.errors import IndexNotFoundError

from tests.helpers import PYTHON, ROOT, state, subprocess_env, write

TOPICS = ["otters", "glaciers", "compilers", "volcanoes", "lighthouses", "orchids", "tides",
          "satellites", "bridges", "beetles", "monsoons", "lanterns"]


def fill(corpus: Path, names: range, variant: str) -> None:
    for i in names:
        topic = TOPICS[i % len(TOPICS)]
        paras = [f"Section {j} of note {i} ({variant}) explains how {topic} relate to item {j * i}. "
                 f"Each paragraph is short so the note yields many chunks. " * 3
                 for j in range(12)]
        write(corpus, f"notes/note-{i:03d}.md", f"# Note {i} on {topic}\n\n" + "\n\n".join(paras))


CHECKPOINT = 128  # texts per vector commit in these runs: several checkpoints per run
SETTINGS = dict(RAG_EMBEDDER="hashing", RAG_CHUNK_TOKENS="48", RAG_CHUNK_OVERLAP="8",
                RAG_EMBED_CHECKPOINT=str(CHECKPOINT))


def ingest(corpus: Path, index: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "ingest", "--corpus", str(corpus), "--index", str(index),
                           "--json", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=subprocess_env(**{**SETTINGS, **env}))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Corpus version A indexed; corpus version B on disk; B's uninterrupted result."""
    base = tmp_path_factory.mktemp("crash")
    corpus, index_a = base / "corpus", base / "index-a"
    fill(corpus, range(0, 40), "v1")
    assert ingest(corpus, index_a).returncode == 0
    state_a = state(index_a)
    # B: 10 notes deleted, 10 changed, 30 added; enough new chunks for several checkpoints
    for i in range(30, 40):
        (corpus / f"notes/note-{i:03d}.md").unlink()
    fill(corpus, range(20, 30), "v2")
    fill(corpus, range(40, 70), "v1")
    reference = base / "index-ref"
    shutil.copytree(index_a, reference)
    done = ingest(corpus, reference)
    assert done.returncode == 0, done.stderr
    state_b = state(reference)
    assert state_b != state_a and state_b["dense"] > 3 * CHECKPOINT
    return corpus, index_a, state_a, state_b, base


def fresh_copy(index_a: Path, base: Path, name: str) -> Path:
    target = base / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(index_a, target)
    return target


POINTS = ["after-scan", "mid-embed", "before-commit", "after-commit", "mid-dense-write"]


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_kill_at_fail_point_then_rerun(scenario, point):
    corpus, index_a, state_a, state_b, base = scenario
    index = fresh_copy(index_a, base, f"index-{point}")
    killed = ingest(corpus, index, RAG_FAILPOINT=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Before the commit, readers see A whole; from the commit on, B whole. Never a mix.
    # (This reader writes nothing, so whatever repair is needed is left to the rerun.)
    expected = state_b if point in ("after-commit", "mid-dense-write") else state_a
    assert state(index, save_dense=False) == expected
    if point == "mid-dense-write":
        assert list(index.glob(".dense-*.tmp")), "the kill left a partial FAISS file"
    rerun = ingest(corpus, index)
    assert rerun.returncode == 0, rerun.stderr
    # The rerun itself leaves exactly one FAISS file, for the current commit, and no temp file.
    assert len(list(index.glob("dense-*.faiss"))) == 1 and not list(index.glob(".*.tmp"))
    assert state(index) == state_b
    embedded = json.loads(rerun.stdout)["chunks"]["embedded"]
    full = json.loads(ingest(corpus, fresh_copy(index_a, base, "again")).stdout)
    if point in ("mid-embed", "before-commit"):  # checkpointed vectors are reused
        assert 0 <= embedded < full["chunks"]["embedded"]
    if point == "mid-embed":
        assert embedded == full["chunks"]["embedded"] - CHECKPOINT
    if point == "after-scan":
        assert embedded == full["chunks"]["embedded"]


@pytest.mark.slow
@pytest.mark.parametrize("point", ["mid-embed", "before-commit"])
def test_kill_during_first_ingest_and_rebuild(tmp_path, point):
    """No previous index (first run), or a --rebuild: the kill leaves the old state and the
    same command run again completes the work."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    fill(corpus, range(0, 20), "v1")
    assert ingest(corpus, index, RAG_FAILPOINT=point).returncode == -signal.SIGKILL
    with pytest.raises(IndexNotFoundError, match="make ingest"):  # no half-made index shows
        state(index, save_dense=False)
    first = ingest(corpus, index)
    assert first.returncode == 0, first.stderr
    complete = state(index)
    assert len(complete["docs"]) == 20
    assert ingest(corpus, index, "--rebuild", RAG_FAILPOINT=point).returncode == -signal.SIGKILL
    assert state(index, save_dense=False) == complete
    assert ingest(corpus, index, "--rebuild").returncode == 0
    assert state(index) == complete


@pytest.mark.slow
def test_kill_at_random_instants(scenario):
    corpus, index_a, state_a, state_b, base = scenario
    rng = random.Random(20261121)
    start = time.perf_counter()
    ingest(corpus, fresh_copy(index_a, base, "timing"))
    duration = time.perf_counter() - start
    trials = 6
    for trial in range(trials):  # one kill in each sixth of the run's duration
        index = fresh_copy(index_a, base, f"index-random-{trial}")
        proc = subprocess.Popen(
            [PYTHON, "-m", "ingest", "--corpus", str(corpus), "--index", str(index), "--quiet"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=subprocess_env(**SETTINGS))
        time.sleep(duration * (trial + rng.random()) / trials)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        now = state(index, save_dense=False)
        assert now in (state_a, state_b), f"trial {trial}: a reader saw a mixed state"
        assert ingest(corpus, index).returncode == 0
        assert state(index) == state_b


@pytest.mark.slow
def test_kill_mid_embed_with_real_model(tmp_path):
    """The same promise with all-MiniLM-L6-v2: the kill lands while the model is embedding."""
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    fill(corpus, range(0, 12), "v1")
    index = tmp_path / "index"
    env = dict(RAG_EMBEDDER="sentence-transformers", RAG_EMBED_CHECKPOINT="64")
    killed = subprocess.run([PYTHON, "-m", "ingest", "--corpus", str(corpus), "--index",
                             str(index), "--json"], cwd=ROOT, capture_output=True, text=True,
                            timeout=900, env=subprocess_env(RAG_FAILPOINT="mid-embed", **env))
    assert killed.returncode == -signal.SIGKILL
    rerun = subprocess.run([PYTHON, "-m", "ingest", "--corpus", str(corpus), "--index",
                            str(index), "--json"], cwd=ROOT, capture_output=True, text=True,
                           timeout=900, env=subprocess_env(**env))
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    # the kill landed after the first 64 vectors were committed, and they were reused
    assert report["chunks"]["embedded"] == report["chunks"]["added"] - 64
    after = state(index)
    assert after["dense"] == report["chunks"]["added"] and len(after["docs"]) >= 20
