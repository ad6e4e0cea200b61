"""Freshness over HTTP against the real service (`python -m app`, watcher on): files added,
changed, deleted, half-written and saved by editors; POST /ingest, GET /documents, /readyz;
and clients asking without pause while the corpus changes under them."""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from ingest.loaders import load
from tests.helpers import PYTHON, ROOT, assert_citations_are_exact, subprocess_env
from tests.service_process import copy_starter, running_service

pytestmark = pytest.mark.slow

# the starter corpus' documents (the service under test ingests a copy of it)
STARTER_DOCS = sum(1 for p in (ROOT / "corpus").rglob("*") if p.is_file())
CHESS_Q = "Who won the 2026 office chess tournament?"


@pytest.fixture(scope="module")
def watched(starter_index, tmp_path_factory):
    """The service watching its own copy of the starter corpus (index copied, not rebuilt)."""
    index, corpus = copy_starter(starter_index, tmp_path_factory.mktemp("watched"))
    with running_service(index, corpus, RAG_WATCH="true",
                         RAG_WATCH_QUIET_MS="300") as url:
        wait_until(lambda: ready(url)["ingest"]["runs"] >= 1)  # the catch-up run is done
        yield url, corpus


def ask(url: str, question: str, **body) -> dict:
    r = httpx.post(f"{url}/ask", json={"question": question, **body}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def ready(url: str) -> dict:
    return httpx.get(f"{url}/readyz", timeout=30).json()


def documents(url: str) -> dict:
    r = httpx.get(f"{url}/documents", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait_until(predicate, timeout: float = 20.0, every: float = 0.05) -> float:
    """Seconds until `predicate()` is true (a liveness bound, not a speed check: the
    benchmark measures speed)."""
    start = time.monotonic()
    while True:
        value = predicate()
        if value:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, "condition not reached in time"
        time.sleep(every)


def cites(url: str, question: str, path: str) -> dict | None:
    body = ask(url, question)
    return body if path in {c["path"] for c in body["citations"]} else None


def quiet(url: str) -> None:
    """Until the watcher has nothing left to do: no run in progress and none due."""
    time.sleep(1.0)
    wait_until(lambda: ready(url)["ingest"]["running"] is None)


def test_added_changed_deleted_are_answered_without_a_restart(watched):
    url, corpus = watched
    quiet(url)
    g0 = ready(url)["index_generation"]
    before = ask(url, CHESS_Q)
    assert before["abstained"] and not before["citations"]

    path = corpus / "office" / "chess.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text("# Office chess\n\nThe 2026 office chess tournament was won by Priya "
                    "Raman, who beat Tomas Ek in the final round.\n")
    wait_until(lambda: cites(url, CHESS_Q, "office/chess.md"))
    added = ask(url, CHESS_Q)
    assert not added["abstained"] and "Priya Raman" in added["answer"]
    assert_citations_are_exact(corpus, added["citations"])
    quiet(url)
    assert ready(url)["index_generation"] == g0 + 1  # one commit for one new file

    path.write_text("# Office chess\n\nThe 2026 office chess tournament was won by Tomas Ek "
                    "after the final was replayed.\n")
    wait_until(lambda: "Tomas Ek after" in ask(url, CHESS_Q)["answer"])
    changed = ask(url, CHESS_Q)
    assert "Priya" not in changed["answer"]
    assert_citations_are_exact(corpus, changed["citations"])
    quiet(url)
    assert ready(url)["index_generation"] == g0 + 2

    path.unlink()
    path.parent.rmdir()
    wait_until(lambda: not cites(url, CHESS_Q, "office/chess.md"))
    gone = ask(url, CHESS_Q)
    assert gone["abstained"] and gone["index_generation"] == g0 + 3
    assert "office/chess.md" not in {d["path"] for d in documents(url)["documents"]}


def test_a_file_written_in_pieces_is_indexed_once_and_whole(watched):
    url, corpus = watched
    quiet(url)
    g0 = ready(url)["index_generation"]
    text = "".join(f"Paragraph {i}: the pier lamp of dock {i} is painted teal.\n\n"
                   for i in range(40))
    data = ("# Docks\n\n" + text).encode()
    with open(corpus / "docks.md", "wb") as f:
        for i in range(0, len(data), len(data) // 8 + 1):
            f.write(data[i:i + len(data) // 8 + 1])
            f.flush()
            time.sleep(0.08)  # a slow copy, pausing less than the quiet period
    wait_until(lambda: "docks.md" in {d["path"] for d in documents(url)["documents"]})
    quiet(url)
    listed = {d["path"]: d for d in documents(url)["documents"]}
    assert listed["docks.md"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert ready(url)["index_generation"] == g0 + 1  # never a half version first
    (corpus / "docks.md").unlink()
    wait_until(lambda: "docks.md" not in {d["path"] for d in documents(url)["documents"]})


def test_editor_saves_leave_no_errors_and_no_temporaries(watched):
    """What vim, emacs and atomic writers do on save, in one burst per save."""
    url, corpus = watched
    quiet(url)
    doc = corpus / "notes.md"
    (corpus / ".notes.md.swp").write_bytes(b"\x00vim swap" * 100)        # vim, while editing
    (corpus / "#notes.md#").write_text("emacs autosave")                 # emacs autosave
    probe = corpus / "4913"                                               # vim's write test
    probe.write_text("")
    probe.unlink()
    tmp = corpus / "notes.md.tmp"                                         # atomic writer
    tmp.write_text("# Notes\n\nThe staff lockers are on level minus two.\n")
    os.replace(tmp, doc)
    shutil.copy(doc, corpus / "notes.md~")                                # backup copy
    wait_until(lambda: "notes.md" in {d["path"] for d in documents(url)["documents"]})
    quiet(url)
    listing = documents(url)
    paths = {d["path"] for d in listing["documents"]}
    assert not {"notes.md~", "#notes.md#", "4913", "notes.md.tmp", ".notes.md.swp"} & paths
    assert listing["refused"] == []
    assert ready(url)["ingest"]["last"]["ok"] is True
    for name in ("notes.md", "notes.md~", "#notes.md#", ".notes.md.swp"):
        (corpus / name).unlink()
    wait_until(lambda: "notes.md" not in {d["path"] for d in documents(url)["documents"]})


def test_documents_lists_what_is_indexed_and_what_was_refused(watched):
    url, corpus = watched
    quiet(url)
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 this is not really a pdf")
    wait_until(lambda: documents(url)["refused"])
    listing = documents(url)
    assert [r["path"] for r in listing["refused"]] == ["broken.pdf"]
    assert listing["refused"][0]["reason"] and listing["refused"][0]["size"] == 33
    docs = {d["path"]: d for d in listing["documents"]}
    assert len(docs) == STARTER_DOCS and "broken.pdf" not in docs
    for d in docs.values():
        data = (corpus / d["path"]).read_bytes()
        assert d["sha256"] == hashlib.sha256(data).hexdigest() and d["size"] == len(data)
        assert d["chunks"] >= 1 and d["kind"] == load(corpus / d["path"], data).kind
        assert datetime.fromisoformat(d["ingested_at"]).tzinfo is not None
    state = ready(url)
    assert state["ready"] and state["index_generation"] == listing["index_generation"]
    assert state["documents"] == STARTER_DOCS
    assert state["chunks"] == sum(d["chunks"] for d in docs.values())
    assert state["ingest"]["watching"] is True
    (corpus / "broken.pdf").unlink()
    wait_until(lambda: not documents(url)["refused"])


def test_post_ingest_returns_the_report_and_waits_its_turn(watched):
    url, corpus = watched
    quiet(url)
    r = httpx.post(f"{url}/ingest", timeout=60)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["files"]["added"] == [] and len(report["files"]["unchanged"]) == STARTER_DOCS
    assert report["generation"] == ready(url)["index_generation"]
    assert httpx.post(f"{url}/ingest", json={"rebuild": "sometimes"}).status_code == 422
    assert httpx.post(f"{url}/ingest", json={"unknown": 1}).status_code == 422


def test_many_triggers_at_once_ingest_each_change_once(starter_index, tmp_path):
    """Watcher off: POST /ingest from four clients and `python -m ingest` from two other
    processes, all at once, over a corpus with new files: every run succeeds, and every new
    file is reported added by exactly one run (two runs at once would both add it)."""
    _, corpus = copy_starter(starter_index, tmp_path)
    env = dict(RAG_INDEX_DIR=str(tmp_path / "index"), RAG_CORPUS_DIR=str(corpus))
    with running_service(tmp_path / "index", corpus, RAG_WATCH="false") as url:
        added: list[str] = []
        for round_ in range(3):
            names = [f"batch{round_}/f{i}.md" for i in range(6)]
            for n in names:
                (corpus / n).parent.mkdir(exist_ok=True)
                (corpus / n).write_text(f"# {n}\n\nRound {round_} file about herons.\n")
            clis = [subprocess.Popen([PYTHON, "-m", "ingest", "--json"], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=subprocess_env(**env)) for _ in range(2)]
            with ThreadPoolExecutor(4) as pool:
                posts = list(pool.map(lambda _: httpx.post(f"{url}/ingest", timeout=120),
                                      range(4)))
            assert all(p.status_code == 200 for p in posts), [p.text for p in posts]
            # callers that arrived during a run share the next one: one report per run
            reports = list({p.json()["run"]: p.json() for p in posts}.values())
            for cli in clis:
                out, err = cli.communicate(timeout=300)
                assert cli.returncode == 0, err
                reports.append(json.loads(out))
            round_added = sorted(p for r in reports for p in r["files"]["added"])
            assert round_added == sorted(names)
            added += round_added
        listing = {d["path"] for d in documents(url)["documents"]}
        assert set(added) <= listing and len(listing) == STARTER_DOCS + 18
        assert ready(url)["documents"] == STARTER_DOCS + 18


def _loaded(path: Path, data: bytes, cache: dict) -> str:
    key = hashlib.sha256(data).hexdigest()
    if key not in cache:
        cache[key] = load(path, data).text
    return cache[key]


def test_clients_asking_while_files_change_see_one_generation_each(watched):
    """Four clients ask without pause while a writer adds, changes and removes files (each
    change saved atomically, then POST /ingest, whose report names the generation that holds
    it; the watcher races it). Zero errors; each client's generations never go back; and
    every citation of every response is exact against the corpus as it was at the
    response's generation."""
    url, corpus = watched
    quiet(url)
    texts: dict[str, bytes] = {}  # the corpus now: path -> bytes
    for p in sorted(corpus.rglob("*")):
        if p.is_file():
            texts[p.relative_to(corpus).as_posix()] = p.read_bytes()
    states = {ready(url)["index_generation"]: dict(texts)}
    stop = threading.Event()
    questions = [f"What is the harbour code of berth {i}?" for i in range(4)] + [
        "How long do I have to get a full refund on an annual plan?", CHESS_Q]

    def client(seed: int) -> list[dict]:
        rng, seen = random.Random(seed), []
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                r = http.post(f"{url}/ask", json={"question": rng.choice(questions)})
                seen.append({"status": r.status_code, "body": r.json()})
        return seen

    def save(rel: str, data: bytes | None) -> None:
        target = corpus / rel
        if data is None:
            target.unlink()
            texts.pop(rel)
        else:
            tmp = target.with_name(f".{target.name}.saving")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            texts[rel] = data

    rng = random.Random(7)
    with ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(client, i) for i in range(4)]
        try:
            for step in range(30):
                berth = rng.randrange(4)
                rel = f"berth-{berth}.md"
                if rel in texts and rng.random() < 0.3:
                    save(rel, None)
                else:
                    code = f"{berth}-{step}-{rng.randrange(1000, 9999)}"
                    save(rel, f"# Berth {berth}\n\nThe harbour code of berth {berth} is "
                              f"{code}, valid from step {step}.\n".encode())
                r = httpx.post(f"{url}/ingest", timeout=60)
                assert r.status_code == 200, r.text
                states[r.json()["generation"]] = dict(texts)
                time.sleep(rng.uniform(0.05, 0.5))
        finally:
            stop.set()
        results = [c.result() for c in clients]
    for rel in [r for r in texts if r.startswith("berth-")]:
        save(rel, None)

    cache: dict[str, str] = {}
    answered = 0
    generations_seen = set()
    for seen in results:
        assert seen and all(s["status"] == 200 for s in seen), [s for s in seen if s["status"] != 200][:3]
        gens = [s["body"]["index_generation"] for s in seen]
        assert gens == sorted(gens), "a client went back to an older generation"
        for s in seen:
            body = s["body"]
            g = body["index_generation"]
            generations_seen.add(g)
            assert g in states, f"generation {g} holds no state the writer made"
            for c in body["citations"]:
                data = states[g].get(c["path"])
                assert data is not None, f"{c['path']} cited at generation {g}, absent there"
                text = _loaded(corpus / c["path"], data, cache)
                assert text[c["start"]:c["end"]] == c["text"], (g, c["path"])
            answered += not body["abstained"]
    assert answered and len(generations_seen) >= 5  # the clients really saw the changes


def test_every_collections_folder_is_watched(tmp_path):
    """With a collections file each folder has its watcher: a file written into one is
    citable there, and only there, without an ingest by hand."""
    for name in ("north", "south"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "intro.md").write_text(f"# {name}\n\nThe {name} office opens at 9.\n")
    (tmp_path / "collections.toml").write_text(
        '[collections.north]\ncorpus = "north"\n[collections.south]\ncorpus = "south"\n')
    with running_service(tmp_path / "index", tmp_path / "unused", RAG_WATCH="true",
                         RAG_COLLECTIONS_FILE=str(tmp_path / "collections.toml")) as url:
        wait_until(lambda: ready(url)["ready_collections"] == 2, timeout=120)
        (tmp_path / "south" / "heron.md").write_text(
            "# Herons\n\nThe south office heron colony has 41 nests, counted in April.\n")
        question = "How many nests does the south office heron colony have?"
        wait_until(lambda: "heron.md" in [c["path"] for c in ask(
            url, question, collection="south")["citations"]], timeout=60)
        north = ask(url, question, collection="north")
        assert "41 nests" not in json.dumps(north) and "heron.md" not in json.dumps(north)
        assert [d["path"] for d in documents_of(url, "north")] == ["intro.md"]


def documents_of(url: str, collection: str) -> list[dict]:
    r = httpx.get(f"{url}/documents", params={"collection": collection}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["documents"]
