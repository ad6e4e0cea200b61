"""Every document format of the starter corpus, end to end over HTTP: a question about a fact
found only in that document is answered with a citation from it whose text holds the fact, the
citation is the exact extracted text, /documents lists the document's kind, and filters.type
keeps a search to that kind."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers import ROOT, STARTER_KEY, assert_citations_are_exact

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {STARTER_KEY}"}
KINDS = {"docx": "docx", "pptx": "pptx", "xlsx": "xlsx", "csv": "csv", "epub": "epub"}


def format_questions() -> list[tuple[str, dict]]:
    """(extension, labelled question) for the first labelled question of each new format."""
    chosen: dict[str, dict] = {}
    lines = (ROOT / "app/eval/data/starter_eval.jsonl").read_text(encoding="utf-8").splitlines()
    for item in map(json.loads, lines):
        if item["answerable"] and len(item["gold"]) == 1:
            ext = item["gold"][0].rsplit(".", 1)[-1]
            if ext in KINDS:
                chosen.setdefault(ext, item)
    return sorted(chosen.items())


def test_every_new_format_has_a_labelled_question():
    assert {ext for ext, _ in format_questions()} == set(KINDS)


@pytest.mark.parametrize("ext,item", format_questions(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_fact_in_each_format_is_answered_and_cited(starter, ext, item):
    url, corpus = starter
    r = httpx.post(f"{url}/ask", json={"question": item["q"]}, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    (gold,) = item["gold"]
    cited = [c for c in body["citations"] if c["path"] == gold]
    assert not body["abstained"] and cited, (item["q"], body["citations"])
    assert any(fact in c["text"] for c in cited for fact in item["facts"]), cited
    assert_citations_are_exact(corpus, body["citations"])
    if ext == "pptx":  # a slide is a page
        assert all(isinstance(c["page"], int) and c["page"] >= 1 for c in cited)
    filtered = httpx.post(f"{url}/ask", json={"question": item["q"], "filters": {"type": ext}},
                          headers=AUTH, timeout=60).json()
    assert filtered["citations"] and all(c["path"].endswith(f".{ext}")
                                         for c in filtered["citations"])


def test_documents_lists_each_kind(starter):
    url, _ = starter
    r = httpx.get(f"{url}/documents", headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    kinds = {d["path"].rsplit(".", 1)[-1]: d["kind"] for d in r.json()["documents"]}
    assert {ext: kinds.get(ext) for ext in KINDS} == KINDS
