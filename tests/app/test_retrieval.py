"""Hybrid retrieval: reciprocal rank fusion, merging of overlapping chunks, filters, and the
Retriever on a small real index (HashingEmbedder, built by run_ingest)."""
from __future__ import annotations

import numpy as np
import pytest

from app.retrieval import Retriever, make_filter, merge_overlapping, rrf
from app.sources import Source
from ingest.store.records import ChunkFilter, ChunkRecord
from ingest.store.sqlite.snapshot import SqliteSnapshot
from ingest.sync import run_ingest
from tests.helpers import write

# --- rrf -------------------------------------------------------------------------------------


def test_rrf_exact_values() -> None:
    scores = rrf([[10, 20, 30], [30, 10]], k=60)
    assert scores == {10: 1 / 61 + 1 / 62, 20: 1 / 62, 30: 1 / 63 + 1 / 61}
    # Found by both retrievers beats first place in only one.
    ranked = sorted(scores, key=lambda c: -scores[c])
    assert ranked == [10, 30, 20]


def test_rrf_k_and_single_ranking() -> None:
    assert rrf([[7, 8]], k=1) == {7: 1 / 2, 8: 1 / 3}
    assert rrf([], k=60) == {}
    assert rrf([[], [5]], k=60) == {5: 1 / 61}


# --- merge_overlapping -----------------------------------------------------------------------


def chunk(id: int, path: str, start: int, end: int, page: int | None = None,
          text: str | None = None) -> ChunkRecord:
    return ChunkRecord(id, path, id, start, end, (), page, text if text is not None
                       else f"text of chunk {id}")


def test_overlapping_chunks_of_one_document_merge() -> None:
    passages = merge_overlapping([(chunk(1, "a.md", 100, 200), 0.9),
                                  (chunk(2, "a.md", 150, 260), 0.8),
                                  (chunk(3, "a.md", 40, 110), 0.7)])
    assert len(passages) == 1
    p = passages[0]
    assert (p.path, p.start, p.end, p.score) == ("a.md", 40, 260, 0.9)
    assert p.chunk_ids == [1, 2, 3]


def test_touching_spans_merge_but_separate_ones_do_not() -> None:
    passages = merge_overlapping([(chunk(1, "a.md", 0, 100), 0.9),
                                  (chunk(2, "a.md", 100, 180), 0.8),
                                  (chunk(3, "a.md", 181, 300), 0.7)])
    assert [(p.start, p.end, p.chunk_ids) for p in passages] == [(0, 180, [1, 2]),
                                                                   (181, 300, [3])]


def test_different_documents_or_pages_do_not_merge() -> None:
    passages = merge_overlapping([(chunk(1, "a.pdf", 0, 100, page=1), 0.9),
                                  (chunk(2, "a.pdf", 50, 150, page=2), 0.8),
                                  (chunk(3, "b.pdf", 0, 100, page=1), 0.7),
                                  (chunk(4, "a.pdf", 90, 120, page=1), 0.6)])
    assert [(p.path, p.page, p.start, p.end, p.chunk_ids) for p in passages] == [
        ("a.pdf", 1, 0, 120, [1, 4]), ("a.pdf", 2, 50, 150, [2]), ("b.pdf", 1, 0, 100, [3])]
    assert [p.score for p in passages] == [0.9, 0.8, 0.7]


def test_duplicate_text_in_two_documents_keeps_the_better_ranked() -> None:
    same = "The same boilerplate paragraph, copied into two documents."
    passages = merge_overlapping([(chunk(1, "b.md", 0, 57, text=same), 0.9),
                                  (chunk(2, "c.md", 10, 20), 0.8),
                                  (chunk(3, "a.md", 0, 57, text=same), 0.7)])
    assert [(p.path, p.chunk_ids) for p in passages] == [("b.md", [1]), ("c.md", [2])]


def test_a_chunk_bridging_two_passages_joins_them() -> None:
    # 1 and 2 are apart; 3 overlaps both: one passage, at the better-ranked one's place.
    passages = merge_overlapping([(chunk(1, "a.md", 0, 100), 0.9),
                                  (chunk(9, "z.md", 0, 50), 0.85),
                                  (chunk(2, "a.md", 150, 250), 0.8),
                                  (chunk(3, "a.md", 80, 170), 0.7)])
    assert [(p.path, p.start, p.end, p.score, p.chunk_ids) for p in passages] == [
        ("a.md", 0, 250, 0.9, [1, 3, 2]), ("z.md", 0, 50, 0.85, [9])]


# --- make_filter -----------------------------------------------------------------------------


def test_make_filter_nothing() -> None:
    assert make_filter(None, None) is None
    assert make_filter("", []) is None


@pytest.mark.parametrize("path, glob", [
    ("guides/", "guides/*"),  # a prefix
    ("guides", "guides*"),
    ("guides/*", "guides/*"),  # a trailing star is still a prefix
    ("guides/*.md", "guides/*.md"),  # a glob is kept as it is
    ("*/faq?.txt", "*/faq?.txt"),
    ("docs/[ab]*.md", "docs/[ab]*.md"),
])
def test_make_filter_path_prefix_or_glob(path: str, glob: str) -> None:
    assert make_filter(path, None) == ChunkFilter(glob, None)


@pytest.mark.parametrize("types, kinds", [
    (["md"], ("markdown",)),
    ([".pdf"], ("pdf", "pdf-ocr")),
    (["pdf-ocr"], ("pdf-ocr",)),
    (["tsv", "csv"], ("csv",)),
    (["docx", "pptx", "xlsx", "epub"], ("docx", "epub", "pptx", "xlsx")),
    (["htm"], ("html",)),
    (["HTML", ".htm"], ("html",)),
    (["txt", "markdown", "MD", ".text"], ("markdown", "text")),
    (["pdf", "md", "htm", "txt"], ("html", "markdown", "pdf", "pdf-ocr", "text")),
])
def test_make_filter_type_aliases(types: list[str], kinds: tuple[str, ...]) -> None:
    assert make_filter(None, types) == ChunkFilter(None, kinds)


def test_make_filter_path_and_types_together() -> None:
    assert make_filter("guides/", ["md"]) == ChunkFilter("guides/*", ("markdown",))


# --- Retriever on a real index ---------------------------------------------------------------

LONG = "# Lighthouse log\n\n" + " ".join(
    f"Entry {i} says the keeper Ada polished lens{i} before dusk." for i in range(14)) + "\n"


def _pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


@pytest.fixture
def index(settings, hashing_embedder):
    """(settings, snapshot) of a small corpus in all four formats, with small chunks so the
    long document has overlapping ones."""
    c = settings.corpus_dir
    write(c, "log.md", LONG)
    write(c, "guides/lamps.md", "# Lamps\n\nThe lighthouse lamp burns paraffin oil every night.\n")
    write(c, "guides/sub/fog.txt", "Fog signals sound every thirty seconds near the lighthouse.\n")
    write(c, "notes.txt", "Notes about otters living near the harbour wall.\n")
    write(c, "page.html", "<h1>Foghorns</h1><p>The lighthouse foghorn warns ships in fog.</p>")
    write(c, "manual.pdf", _pdf(["Page one describes the lighthouse lens and its prisms.",
                                 "Page two describes the lighthouse stairs and the keeper."]))
    settings = settings.model_copy(update={"chunk_tokens": 40, "chunk_overlap": 10})
    report = run_ingest(settings, hashing_embedder)
    assert report.failed == [] and len(report.added) == 6
    with SqliteSnapshot.open(settings.index_dir) as snap:
        yield settings, snap


def ask(snap: SqliteSnapshot, embedder, question: str, k: int, mode: str = "hybrid",
        path: str | None = None, types: list[str] | None = None) -> list[Source]:
    vector = embedder.embed([question])[0]
    return Retriever(snap).retrieve(question, vector, k, mode, make_filter(path, types))


def check_sources(snap: SqliteSnapshot, embedder, question: str, sources: list[Source]) -> None:
    """Invariants every retrieval result keeps."""
    assert [s.n for s in sources] == list(range(1, len(sources) + 1))
    scores = [s.score for s in sources]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    q = embedder.embed([question])[0]
    for s in sources:
        doc = snap.document_text(s.path)
        assert doc is not None and 0 <= s.start < s.end <= len(doc)
        assert s.text == doc[s.start:s.end]
        records = snap.chunks(list(s.chunk_ids))
        assert len(records) == len(s.chunk_ids) >= 1
        for r in records:  # the passage covers each of its chunks
            assert (r.path, r.page) == (s.path, s.page)
            assert s.start <= r.start and r.end <= s.end
        cosines = embedder.embed([r.text for r in records]) @ q
        assert s.similarity == pytest.approx(float(np.max(cosines)), abs=2e-3)  # float16 storage
    for a in sources:  # no two passages overlap or repeat one another
        for b in sources:
            if a.n < b.n and (a.path, a.page) == (b.path, b.page):
                assert a.end < b.start or b.end < a.start, (a, b)
            if a.n < b.n:
                assert a.text != b.text


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_every_mode_returns_numbered_exact_spans(index, hashing_embedder, mode: str) -> None:
    _, snap = index
    question = "When had the lighthouse keeper Ada polished lens5?"
    sources = ask(snap, hashing_embedder, question, 3, mode)
    assert len(sources) == 3
    check_sources(snap, hashing_embedder, question, sources)
    assert any(s.path == "log.md" and "lens5" in s.text for s in sources)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_the_overlapping_chunks_of_the_long_document_merge(index, hashing_embedder,
                                                           mode: str) -> None:
    _, snap = index
    log_chunks = [c for c in snap.chunks(snap.chunk_ids()) if c.path == "log.md"]
    assert len(log_chunks) >= 4
    assert any(b.start < a.end for a, b in zip(log_chunks, log_chunks[1:]))  # overlapping

    question = "keeper Ada polished lens3 lens4 lens5 lens6 lens7"
    sources = ask(snap, hashing_embedder, question, 3, mode)
    check_sources(snap, hashing_embedder, question, sources)
    merged = [s for s in sources if s.path == "log.md"]
    assert len(merged) == 1, merged
    passage = merged[0]
    assert len(passage.chunk_ids) >= 2
    records = snap.chunks(list(passage.chunk_ids))
    assert passage.start == min(r.start for r in records)
    assert passage.end == max(r.end for r in records)
    for r in records:  # the passage text spans every chunk it merged
        assert r.text in passage.text
    assert "lens3" in passage.text and "lens7" in passage.text


def test_lexical_mode_returns_only_matching_chunks(index, hashing_embedder) -> None:
    _, snap = index
    sources = ask(snap, hashing_embedder, "otters", 5, "lexical")
    assert [(s.n, s.path) for s in sources] == [(1, "notes.txt")]
    check_sources(snap, hashing_embedder, "otters", sources)
    # Dense search always finds the nearest chunks, related or not.
    dense = ask(snap, hashing_embedder, "otters", 5, "dense")
    assert len(dense) == 5 and dense[0].path == "notes.txt"
    assert dense[0].similarity > dense[-1].similarity


def test_question_words_that_are_all_stop_words_still_search(index, hashing_embedder) -> None:
    _, snap = index
    sources = ask(snap, hashing_embedder, "the", 3, "lexical")
    assert sources  # falls back to the question itself
    check_sources(snap, hashing_embedder, "the", sources)


def test_k_bounds_the_number_of_sources(index, hashing_embedder) -> None:
    _, snap = index
    assert len(ask(snap, hashing_embedder, "lighthouse", 1)) == 1
    everything = ask(snap, hashing_embedder, "lighthouse", 50)
    check_sources(snap, hashing_embedder, "lighthouse", everything)
    # Every document once, the overlapping log chunks folded together (pdf: one per page).
    assert sorted((s.path, s.page) for s in everything) == sorted(
        [("log.md", None), ("guides/lamps.md", None), ("guides/sub/fog.txt", None),
         ("notes.txt", None), ("page.html", None), ("manual.pdf", 1), ("manual.pdf", 2)])


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
@pytest.mark.parametrize("path, types, expected", [
    ("guides/", None, {"guides/lamps.md", "guides/sub/fog.txt"}),
    ("guides/*.md", None, {"guides/lamps.md"}),
    ("guides/sub", None, {"guides/sub/fog.txt"}),
    (None, ["pdf"], {"manual.pdf"}),
    (None, ["md"], {"log.md", "guides/lamps.md"}),
    (None, [".htm"], {"page.html"}),
    (None, ["txt", "html"], {"notes.txt", "guides/sub/fog.txt", "page.html"}),
    ("guides/", ["txt"], {"guides/sub/fog.txt"}),
    ("nowhere/", None, set()),
])
def test_filters_restrict_paths_and_kinds(index, hashing_embedder, mode, path, types,
                                          expected) -> None:
    _, snap = index
    question = "lighthouse lamp fog foghorn lens otters keeper"
    sources = ask(snap, hashing_embedder, question, 10, mode, path, types)
    check_sources(snap, hashing_embedder, question, sources)
    assert {s.path for s in sources} <= expected
    if mode != "lexical":  # dense finds every allowed document
        assert {s.path for s in sources} == expected


def test_pdf_sources_carry_their_page(index, hashing_embedder) -> None:
    _, snap = index
    sources = ask(snap, hashing_embedder, "lighthouse stairs", 2, "hybrid", types=["pdf"])
    check_sources(snap, hashing_embedder, "lighthouse stairs", sources)
    assert [(s.path, s.page) for s in sources] == [("manual.pdf", 2), ("manual.pdf", 1)]
    assert "stairs" in sources[0].text and "stairs" not in sources[1].text


def test_similarity_is_the_cosine_to_the_question(index, hashing_embedder) -> None:
    _, snap = index
    question = "The lighthouse lamp burns paraffin oil every night."  # guides/lamps.md verbatim
    sources = ask(snap, hashing_embedder, question, 3, "dense")
    check_sources(snap, hashing_embedder, question, sources)
    assert sources[0].path == "guides/lamps.md"
    assert sources[0].similarity == pytest.approx(
        float(hashing_embedder.embed([question])[0] @ hashing_embedder.embed(
            [sources[0].text])[0]), abs=2e-3)
    assert sources[0].similarity > 0.7 > sources[1].similarity


def test_a_filter_that_matches_nothing_returns_nothing(settings, hashing_embedder) -> None:
    write(settings.corpus_dir, "only.md", "# Only\n\nA single tiny document about kites.\n")
    run_ingest(settings, hashing_embedder)
    with SqliteSnapshot.open(settings.index_dir) as snap:
        assert ask(snap, hashing_embedder, "kites", 3, "lexical", path="other/") == []
        assert ask(snap, hashing_embedder, "kites", 3, "dense", types=["pdf"]) == []


def test_term_coverage_weighs_the_question_words_the_sources_lack(index, hashing_embedder):
    from app.retrieval import term_coverage, term_weights

    def coverage(question: str, sources) -> float:
        return term_coverage(term_weights(question, snap), sources)

    _, snap = index
    q_in = "What does the lighthouse lamp burn?"
    q_out = "What does the lighthouse in Reykjavik burn?"  # the corpus never names Reykjavik
    assert coverage(q_in, ask(snap, hashing_embedder, q_in, 3)) == 1.0
    low = coverage(q_out, ask(snap, hashing_embedder, q_out, 3))
    # three content words, one missing: 2/3 if they weighed the same; less, because
    # "reykjavik" (in no chunk) weighs more than "lighthouse" (in most)
    assert 0 < low < 2 / 3 - 0.05
    assert snap.doc_freq("reykjavik") == 0 and snap.doc_freq("lighthouse") >= 5
    assert coverage("the of and", []) == 1.0  # stop words only: no evidence
