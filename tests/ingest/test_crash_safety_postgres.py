"""Crash safety on PostgreSQL: the same fail points as on SQLite (test_crash_safety.py), a real
`python -m ingest` SIGKILLed against a real server. Readers see the old state or the new one,
never a mix, and a rerun converges without embedding again what was checkpointed."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ingest.errors import IndexNotFoundError
from ingest.settings import IngestSettings
from tests.helpers import PYTHON, ROOT, store_state, subprocess_env
from tests.ingest.test_crash_safety import CHECKPOINT, SETTINGS, fill
from tests.postgres import drop_schema, new_schema, pg_env

pytestmark = pytest.mark.slow


def ingest(corpus: Path, env: dict, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "ingest", "--corpus", str(corpus), "--json", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=subprocess_env(**{**SETTINGS, **env, **extra}))


def reader_settings(env: dict) -> IngestSettings:
    return IngestSettings(store="postgres", database_url=env["RAG_DATABASE_URL"],
                          database_schema=env["RAG_DATABASE_SCHEMA"])


@pytest.fixture(scope="module")
def scenario(pg_url, tmp_path_factory):
    """Corpus versions A and B in two folders; the state of each, indexed uninterrupted."""
    base = tmp_path_factory.mktemp("crash-pg")
    corpus_a, corpus_b = base / "a", base / "b"
    fill(corpus_a, range(0, 40), "v1")
    fill(corpus_b, range(0, 30), "v1")
    fill(corpus_b, range(20, 30), "v2")  # 10 changed, 30-39 deleted, 30 added
    fill(corpus_b, range(40, 70), "v1")
    env = pg_env(pg_url, new_schema())
    assert ingest(corpus_a, env).returncode == 0
    state_a = store_state(reader_settings(env))
    full = ingest(corpus_b, env)
    assert full.returncode == 0, full.stderr
    state_b = store_state(reader_settings(env))
    assert state_b != state_a and state_b["dense"] > 3 * CHECKPOINT
    drop_schema(pg_url, env["RAG_DATABASE_SCHEMA"])
    return pg_url, corpus_a, corpus_b, state_a, state_b, json.loads(full.stdout)


def index_of_a(pg_url: str, corpus_a: Path) -> dict:
    env = pg_env(pg_url, new_schema())
    assert ingest(corpus_a, env).returncode == 0
    return env


@pytest.mark.parametrize("point", ["after-scan", "mid-embed", "before-commit", "after-commit"])
def test_kill_at_fail_point_then_rerun(scenario, point):
    pg_url, corpus_a, corpus_b, state_a, state_b, full = scenario
    env = index_of_a(pg_url, corpus_a)
    killed = ingest(corpus_b, env, RAG_FAILPOINT=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    expected = state_b if point == "after-commit" else state_a
    assert store_state(reader_settings(env)) == expected
    rerun = ingest(corpus_b, env)  # also proves the dead run's advisory lock was released
    assert rerun.returncode == 0, rerun.stderr
    assert store_state(reader_settings(env)) == state_b
    embedded = json.loads(rerun.stdout)["chunks"]["embedded"]
    if point == "mid-embed":  # the checkpointed vectors are reused
        assert embedded == full["chunks"]["embedded"] - CHECKPOINT
    if point == "before-commit":
        assert embedded == 0
    if point == "after-scan":
        assert embedded == full["chunks"]["embedded"]
    drop_schema(pg_url, env["RAG_DATABASE_SCHEMA"])


def test_kill_during_first_ingest_and_rebuild(scenario):
    pg_url, corpus_a, *_ = scenario
    env = pg_env(pg_url, new_schema())
    assert ingest(corpus_a, env, RAG_FAILPOINT="mid-embed").returncode == -signal.SIGKILL
    with pytest.raises(IndexNotFoundError, match="make ingest"):  # no half-made index shows
        store_state(reader_settings(env))
    assert ingest(corpus_a, env).returncode == 0
    complete = store_state(reader_settings(env))
    assert len(complete["docs"]) == 40
    killed = ingest(corpus_a, env, "--rebuild", RAG_FAILPOINT="before-commit")
    assert killed.returncode == -signal.SIGKILL
    assert store_state(reader_settings(env)) == complete
    assert ingest(corpus_a, env, "--rebuild").returncode == 0
    assert store_state(reader_settings(env)) == complete
    drop_schema(pg_url, env["RAG_DATABASE_SCHEMA"])


def test_kill_at_random_instants(scenario):
    pg_url, corpus_a, corpus_b, state_a, state_b, _ = scenario
    rng = random.Random(20261202)
    env = index_of_a(pg_url, corpus_a)
    start = time.perf_counter()
    assert ingest(corpus_b, env).returncode == 0
    duration = time.perf_counter() - start
    drop_schema(pg_url, env["RAG_DATABASE_SCHEMA"])
    trials = 4
    for trial in range(trials):  # one kill in each quarter of the run's duration
        env = index_of_a(pg_url, corpus_a)
        proc = subprocess.Popen(
            [PYTHON, "-m", "ingest", "--corpus", str(corpus_b), "--quiet"], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=subprocess_env(**SETTINGS, **env))
        time.sleep(duration * (trial + rng.random()) / trials)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert store_state(reader_settings(env)) in (state_a, state_b), \
            f"trial {trial}: a reader saw a mixed state"
        assert ingest(corpus_b, env).returncode == 0
        assert store_state(reader_settings(env)) == state_b
        drop_schema(pg_url, env["RAG_DATABASE_SCHEMA"])
