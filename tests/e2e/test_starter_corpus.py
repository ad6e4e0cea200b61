"""The starter corpus ingests cleanly with the real model, in every format."""
from __future__ import annotations

from collections import Counter

import pytest

from ingest.store.sqlite.snapshot import SqliteSnapshot


@pytest.mark.slow
def test_every_starter_document_is_ingested(starter_index):
    settings, report = starter_index
    assert report.failed == []
    assert report.truncated == 0
    kinds = Counter(p.rsplit(".", 1)[-1] for p in report.added)
    assert len(report.added) >= 20 and {"md", "txt", "html", "pdf", "docx", "pptx", "xlsx",
                                                 "csv", "epub"} <= set(kinds)
    with SqliteSnapshot.open(settings.index_dir) as snap:
        pdf_pages = {}
        for doc in snap.documents():
            assert doc.chunks > 0
        for c in snap.chunks(snap.chunk_ids()):
            assert snap.document_text(c.path)[c.start:c.end] == c.text
            if c.page is not None:
                pdf_pages.setdefault(c.path, set()).add(c.page)
    assert sum(1 for pages in pdf_pages.values() if len(pages) >= 3) >= 2, pdf_pages


@pytest.mark.slow
def test_questions_find_their_documents(starter_index, real_embedder):
    settings, _ = starter_index
    with SqliteSnapshot.open(settings.index_dir) as snap:
        for question, words in [("How many days do I have to get a refund?", "refund"),
                                ("What is reciprocal rank fusion?", "fusion")]:
            dense = snap.chunks([i for i, _ in snap.search_dense(real_embedder.embed([question])[0], 3)])
            lexical = snap.chunks([i for i, _ in snap.search_lexical(question, 3)])
            assert any(words in c.text.lower() for c in dense), [c.path for c in dense]
            assert any(words in c.text.lower() for c in lexical), [c.path for c in lexical]
