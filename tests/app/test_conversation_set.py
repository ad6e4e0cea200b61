"""The labelled conversation set (app/eval/data/starter_conversations.jsonl) checked against
the starter corpus, without a model: its shape is what /ask accepts as `history`, every
answerable last question has gold documents that exist and key facts that those documents'
extracted text really contains (compared the way the starter evaluation compares facts), the
unanswerable ones carry no gold, and the follow-ups really lean on the conversation."""
from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest

import app.eval
from app.eval.starter import QUESTIONS, _norm
from ingest.loaders import load
from tests.helpers import ROOT, STARTER_CORPUS

# Found the way the evaluation finds starter_eval.jsonl: beside the installed package.
CONVERSATIONS = Path(app.eval.__file__).resolve().parent / "data" / "starter_conversations.jsonl"

KEYS = {"id", "split", "kind", "history", "q", "answerable", "gold", "facts"}
KINDS = {"follow-up", "topic-switch", "standalone", "unanswerable"}
MAX_TURNS, MAX_CHARS = 50, 8000  # what POST /ask accepts as history (issue 13)
MAX_FOLLOW_UP_WORDS = 12
# A follow-up leans on the conversation: a pronoun or determiner pointing back, or ellipsis
# ("And for monthly plans?", "What about Priority 2?").
REFERRING = {"it", "its", "it's", "that", "those", "these", "this", "them", "they", "their",
             "one"}
ELLIPSIS = ("and ", "what about ")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    lines = [line for line in CONVERSATIONS.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    out = []
    for number, line in enumerate(lines, 1):
        row = json.loads(line)  # a line that is not JSON fails here, with its text
        assert isinstance(row, dict), f"line {number} is not a JSON object"
        out.append(row)
    return out


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    """Every starter document's extracted text (the loaders ingestion uses: PDF pages and
    HTML without markup count as they are indexed), folded as facts are compared."""
    return {p.relative_to(STARTER_CORPUS).as_posix(): _norm(load(p, p.read_bytes()).text)
            for p in sorted(STARTER_CORPUS.rglob("*")) if p.is_file()}


def test_the_set_ships_with_the_package():
    assert CONVERSATIONS.is_file()
    assert CONVERSATIONS.parent == QUESTIONS.parent  # beside starter_eval.jsonl
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["app"]
    relative = CONVERSATIONS.relative_to(Path(app.eval.__file__).resolve().parent.parent)
    assert any(fnmatch.fnmatch(relative.as_posix(), p) for p in patterns), patterns


def test_rows_have_exactly_the_keys_and_valid_labels(rows):
    assert len(rows) >= 60
    for row in rows:
        assert set(row) == KEYS, (row.get("id"), sorted(set(row) ^ KEYS))
        assert re.fullmatch(r"c\d{2,}", row["id"]), row["id"]
        assert row["split"] in {"dev", "test"}, row["id"]
        assert row["kind"] in KINDS, row["id"]
        assert row["answerable"] is (row["kind"] != "unanswerable"), row["id"]
        assert isinstance(row["gold"], list) and isinstance(row["facts"], list), row["id"]
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids), [i for i, n in Counter(ids).items() if n > 1]


def test_every_kind_is_in_both_splits_in_measurable_numbers(rows):
    counts = Counter((r["kind"], r["split"]) for r in rows)
    for kind in KINDS:
        for split in ("dev", "test"):
            assert counts[kind, split] >= 4, (kind, split, counts[kind, split])
    kinds = Counter(r["kind"] for r in rows)
    # enough of each for the targets (hit@5 >= 0.9, >= 80% abstained) to mean something
    assert kinds["follow-up"] >= 30 and kinds["topic-switch"] >= 12
    assert kinds["unanswerable"] >= 10 and kinds["standalone"] >= 6


def test_histories_are_what_ask_accepts(rows):
    for row in rows:
        history = row["history"]
        assert isinstance(history, list) and 0 < len(history) <= MAX_TURNS, row["id"]
        for i, turn in enumerate(history):
            assert isinstance(turn, dict) and set(turn) == {"role", "content"}, (row["id"], i)
            assert turn["role"] == ("user" if i % 2 == 0 else "assistant"), (row["id"], i)
            content = turn["content"]
            assert isinstance(content, str) and content.strip(), (row["id"], i)
            assert len(content) <= MAX_CHARS, (row["id"], i)
        # q is the next user turn, so the history ends with the assistant's answer
        assert history[-1]["role"] == "assistant", row["id"]
        assert 1 <= len(history) // 2 <= 3, row["id"]


def test_assistant_turns_invent_no_numbers(rows, texts):
    """The earlier answers state what the documents say: every number in them (citation
    markers aside) occurs somewhere in the corpus."""
    corpus = " ".join(texts.values())
    for row in rows:
        for turn in row["history"]:
            if turn["role"] != "assistant":
                continue
            content = re.sub(r"\[\d+\]", "", turn["content"])
            for number in re.findall(r"\d+(?:[.,:]\d+)*", content):
                assert _norm(number) in corpus, (row["id"], number)


def test_last_questions_are_questions_and_not_the_starter_ones(rows):
    starter = {_norm(json.loads(line)["q"]) for line in
               QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()}
    for row in rows:
        q = row["q"]
        assert isinstance(q, str) and q.strip().endswith("?"), row["id"]
        assert len(q) <= MAX_CHARS, row["id"]
        assert _norm(q) not in starter, (row["id"], "copied from starter_eval.jsonl")
        assert _norm(q) not in {_norm(t["content"]) for t in row["history"]}, row["id"]


def test_follow_ups_are_short_and_lean_on_the_conversation(rows):
    for row in rows:
        words, q = _words(row["q"]), row["q"].lower()
        if row["kind"] in {"follow-up", "unanswerable"}:
            assert len(words) <= MAX_FOLLOW_UP_WORDS, (row["id"], len(words))
            assert REFERRING & set(words) or q.startswith(ELLIPSIS), \
                (row["id"], "no pronoun or ellipsis: does it need the history?")
        else:  # topic switches and standalone questions stand alone
            assert not q.startswith(ELLIPSIS), (row["id"], "reads as a follow-up")


def test_answerable_rows_have_gold_documents_that_hold_their_facts(rows, texts):
    for row in [r for r in rows if r["answerable"]]:
        gold, facts = row["gold"], row["facts"]
        assert gold and len(set(gold)) == len(gold), row["id"]
        for path in gold:
            assert path in texts, (row["id"], f"{path} is not a starter document")
        assert facts and len(set(facts)) == len(facts), row["id"]
        for fact in facts:
            assert isinstance(fact, str) and fact.strip(), row["id"]
            assert any(_norm(fact) in texts[g] for g in gold), \
                (row["id"], fact, "not in the extracted text of any gold document")
            # the answer must bring the fact; the question must not hand it over
            assert _norm(fact) not in _norm(row["q"]), (row["id"], fact)


def test_unanswerable_rows_have_no_gold_and_no_facts(rows):
    for row in [r for r in rows if not r["answerable"]]:
        assert row["gold"] == [] and row["facts"] == [], row["id"]


def test_the_gold_documents_cover_the_whole_corpus_and_both_folders_in_each_split(rows, texts):
    covered = {g for r in rows for g in r["gold"]}
    assert covered == set(texts), sorted(set(texts) - covered)
    for split in ("dev", "test"):
        folders = {g.split("/")[0] for r in rows if r["split"] == split for g in r["gold"]}
        assert folders == {"kestrelbook", "guides"}, split
        formats = {Path(g).suffix for r in rows if r["split"] == split for g in r["gold"]}
        assert {".md", ".txt", ".html", ".pdf"} <= formats, (split, formats)
