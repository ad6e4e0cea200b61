"""The terminal entry points: `python -m app.ask` (make ask), `python -m app.quickstart`
(make run, the README's first command) and `python -m app.demo` (make demo)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PYTHON, ROOT, subprocess_env
from tests.service_process import copy_starter, free_port

pytestmark = pytest.mark.slow


def test_ask_prints_the_answer_and_its_sources(starter_index):
    settings, _ = starter_index
    env = subprocess_env(RAG_INDEX_DIR=str(settings.index_dir),
                         RAG_CORPUS_DIR=str(settings.corpus_dir))
    out = subprocess.run([PYTHON, "-m", "app.ask", "When will API v1 be removed?"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "30 June 2026" in out.stdout and "[1] " in out.stdout and "characters" in out.stdout
    as_json = subprocess.run([PYTHON, "-m", "app.ask", "--json", "What is the capital of Peru?"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert json.loads(as_json.stdout)["abstained"] is True


def test_ask_without_an_index_says_what_to_do(tmp_path):
    out = subprocess.run([PYTHON, "-m", "app.ask", "anything"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300,
                         env=subprocess_env(RAG_INDEX_DIR=str(tmp_path / "none")))
    assert out.returncode == 2 and "make ingest" in out.stderr


def test_quickstart_ingests_serves_and_answers(starter_index, tmp_path):
    # The starter index copied, and one new file: the run ingests what changed (a first run
    # from nothing is the same code, which the starter index fixture runs), serves, answers.
    index, corpus = copy_starter(starter_index, tmp_path)
    (corpus / "quickstart-note.md").write_text("# Note\n\nThe quickstart note is new.\n")
    out = subprocess.run([PYTHON, "-m", "app.quickstart", "--once"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600,
                         env=subprocess_env(RAG_CORPUS_DIR=str(corpus),
                                            RAG_INDEX_DIR=str(index),
                                            RAG_PORT=str(free_port())))
    assert out.returncode == 0, out.stderr
    assert "added" in out.stdout and "quickstart-note.md" in out.stdout
    assert "30 days" in out.stdout and "refund-policy.md" in out.stdout


def test_make_demo_tells_the_freshness_story_and_leaves_the_corpus_as_it_was(
        starter_index, tmp_path):
    from app.demo import corpus_fingerprint

    _, corpus = copy_starter(starter_index, tmp_path)

    before = corpus_fingerprint(corpus)
    out = subprocess.run([PYTHON, "-m", "app.demo"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env=subprocess_env(RAG_CORPUS_DIR=str(corpus),
                                                         RAG_INDEX_DIR=str(tmp_path / "index")))
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    steps = [text.index(s) for s in ("1. A question", "2. A new document", "Citable",
                                     "3. The document is edited", "The answer changed",
                                     "4. The document is deleted", "No longer cited",
                                     "Stopping the service", "as it was found")]
    assert steps == sorted(steps)
    first, rest = text.split("2. A new document", 1)
    assert "abstained" in first  # the question is not answerable before the file exists
    assert "Priya Raman, who beat" in rest.split("3. The document")[0]
    assert "[1] demo-office-chess.md" in rest
    assert corpus_fingerprint(corpus) == before


def test_make_eval_scores_the_starter_questions(starter_index, tmp_path):
    """`python -m app.eval starter --json` on the starter corpus: the real pipeline, the
    deterministic extractive generator. Floors well under today's figures guard against a
    regression in retrieval or abstention; each miss is classified."""
    settings, _ = starter_index
    shutil.copytree(settings.index_dir, tmp_path / "index")
    out = subprocess.run([PYTHON, "-m", "app.eval", "starter", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env=subprocess_env(RAG_CORPUS_DIR=str(settings.corpus_dir),
                                            RAG_INDEX_DIR=str(tmp_path / "index")))
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    m = body["metrics"]
    assert m["answerable"] >= 40 and m["unanswerable"] >= 10
    assert m["hit@5"] >= 0.95 and m["key_fact_recall"] >= 0.6
    assert m["abstention_recall"] >= 0.5 and m["abstention_precision"] >= 0.8
    assert sum(body["failures"].values()) == len(body["missed"])
    assert {f["class"] for f in body["missed"]} <= {"retrieval miss", "grounding miss",
                                                    "abstention error"}


def test_make_eval_scores_the_conversations(starter_index, tmp_path):
    """`ragfirst eval conversations --split test --json` (the installed command finds the
    shipped set): follow-ups are found far more often with their history than alone, and a
    topic switch is no worse than the question alone."""
    settings, _ = starter_index
    shutil.copytree(settings.index_dir, tmp_path / "index")
    out = subprocess.run([str(Path(PYTHON).parent / "ragfirst"), "eval", "conversations",
                          "--split", "test", "--json"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300,
                         env=subprocess_env(RAG_CORPUS_DIR=str(settings.corpus_dir),
                                            RAG_INDEX_DIR=str(tmp_path / "index")))
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    kinds = body["kinds"]
    assert set(kinds) == {"follow-up", "topic-switch", "standalone", "unanswerable"}
    follow = kinds["follow-up"]
    assert follow["with_history"]["hit@5"] >= 0.9
    assert follow["with_history"]["hit@5"] >= follow["alone"]["hit@5"] + 0.3
    switch = kinds["topic-switch"]
    assert switch["with_history"]["hit@5"] >= switch["alone"]["hit@5"]
    assert all(q["retrieval_query"] == q["q"] for q in body["queries"]
               if q["kind"] == "topic-switch")
    assert body["rewrite_us"]["p50"] > 0
