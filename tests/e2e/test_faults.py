"""The real service (`python -m app` over HTTP) on a bad day: a truncated database at start, the
database deleted while it serves, a full disk, a folder that cannot be written. Each is answered (503 with
the reason, or the last commit still answering) and recovered without a person. The index uses
the hashing embedder: these faults are the store's, not the model's. The full disk is a small
tmpfs (root, as CI runs the tests)."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import SMALL_CORPUS, write
from tests.service_process import running_service, service_log
from tests.system_deps import small_disk

pytestmark = pytest.mark.slow
HASHING = {"RAG_EMBEDDER": "hashing", "RAG_ABSTAIN_THRESHOLD": "-1"}
QUESTION = "How long do I have to get a full refund on an annual plan?"


def corpus(where: Path) -> Path:
    for name, text in SMALL_CORPUS.items():
        write(where, name, text)
    return where


def until(probe, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def ready(url: str) -> dict | None:
    r = httpx.get(f"{url}/readyz", timeout=10)
    return r.json() if r.status_code == 200 else None


def ask(url: str, question: str = QUESTION) -> httpx.Response:
    return httpx.post(f"{url}/ask", json={"question": question}, timeout=60)


def ingest(url: str) -> httpx.Response:
    return httpx.post(f"{url}/ingest", timeout=120)


def test_a_truncated_database_at_start_is_moved_aside_and_rebuilt(tmp_path):
    docs = corpus(tmp_path / "corpus")
    with running_service(tmp_path / "index", docs, **HASHING) as url:  # build one
        assert ingest(url).status_code == 200
        first = ready(url)
    db = tmp_path / "index" / "index.db"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    (tmp_path / "index" / "index.db-wal").unlink(missing_ok=True)
    with running_service(tmp_path / "index", docs, **HASHING) as url:  # it starts anyway
        state = until(lambda: ready(url))
        assert state["index_id"] != first["index_id"] and state["documents"] == 3
        assert "30 days" in ask(url).json()["answer"]
        assert "damaged" in service_log(tmp_path / "index", url).read_text()
    assert list((tmp_path / "index").glob("index.db.damaged-*"))  # kept for a person to see


def test_a_database_deleted_while_serving_comes_back_under_a_new_id(tmp_path):
    docs = corpus(tmp_path / "corpus")
    with running_service(tmp_path / "index", docs, **HASHING) as url:
        assert ingest(url).status_code == 200
        before = ask(url).json()
        for part in (tmp_path / "index").glob("index.db*"):
            part.unlink()
        after = until(lambda: (r := ask(url)).status_code == 200 and r.json())
        assert after["index_id"] != before["index_id"]  # a new index, said so
        assert "30 days" in after["answer"]


def test_a_full_disk_fails_the_ingest_and_freeing_space_is_enough(tmp_path):
    docs = corpus(tmp_path / "corpus")
    with small_disk(tmp_path / "disk", "3m") as disk, \
            running_service(disk / "index", docs, **HASHING) as url:
        assert ingest(url).status_code == 200
        filler = disk / "filler"
        with open(filler, "wb") as f:  # fill what is left
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        write(docs, "kb/drone.md", "# Drone\n\nThe Osprey-7 drone carries 4.2 kilograms. "
                                   + "More about the drone's payload and range. " * 400)
        failed = ingest(url)
        assert failed.status_code == 503 and "disk is full" in failed.json()["detail"]
        assert str(disk) not in failed.text
        assert "30 days" in ask(url).json()["answer"]  # the last commit still answers
        filler.unlink()
        retried = ingest(url)
        assert retried.status_code == 200, retried.text
        assert "kb/drone.md" in retried.json()["files"]["added"]
        assert "4.2 kilograms" in ask(url, "What does the Osprey-7 drone carry?").json()["answer"]


def test_a_folder_that_cannot_be_written_is_retried_until_it_can(tmp_path):
    # The index folder stops taking writes while the service runs (here its lock file becomes
    # a folder: a tmpfs cannot be remounted read-only under a service that has it open, and
    # root ignores permissions), a file is added meanwhile, then writes work again.
    docs = corpus(tmp_path / "corpus")
    with running_service(tmp_path / "index", docs, RAG_WATCH="true", **HASHING) as url:
        until(lambda: ready(url))
        lock = tmp_path / "index" / "ingest.lock"
        lock.unlink()
        lock.mkdir()
        try:
            write(docs, "kb/egret.md", "# Egret\n\nThe egret count this spring was 312.\n")
            until(lambda: (httpx.get(f"{url}/readyz").json()["ingest"]["last"] or {})
                  .get("ok") is False)
            state = httpx.get(f"{url}/readyz").json()
            assert state["ready"] and state["ingest"]["retrying"]  # failing, and saying so
            assert "cannot be written" in state["ingest"]["last"]["error"]
            assert str(tmp_path) not in str(state)
        finally:
            lock.rmdir()
        # no new file event: the retry picks the file up once the folder is writable again
        answer = until(lambda: (b := ask(url, "What was the egret count this spring?")
                                .json()) and "312" in b["answer"] and b, timeout=90)
        assert "kb/egret.md" in {c["path"] for c in answer["citations"]}


def test_the_log_is_checkpointed_while_the_service_runs(tmp_path):
    docs = corpus(tmp_path / "corpus")
    with running_service(tmp_path / "index", docs, **HASHING) as url:
        for i in range(25):
            write(docs, f"notes/n{i}.md", f"# N{i}\n\nNote {i} about storks. " * 50)
            assert ingest(url).status_code == 200
            ask(url)
        metrics = httpx.get(f"{url}/metrics").text
    sizes = {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
             if line.startswith("ragfirst_index_storage_bytes{")}
    assert sizes["wal"] <= max(sizes["database"], 1 << 20), sizes
    shutil.rmtree(tmp_path / "index")
