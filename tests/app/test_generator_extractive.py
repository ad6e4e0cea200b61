"""The extractive generator's choices: table rows read with their header, the neighbouring
sentence a chosen one needs, facts found through the embedder (the real all-MiniLM-L6-v2, and
a deterministic stand-in), and the same generator without an embedder. Every answer passes the
citation check unchanged (app.citations, lexical check alone)."""
from __future__ import annotations

import numpy as np
import pytest

from app.citations import check_answer
from app.generators import build_generator
from app.generators.extractive import ExtractiveGenerator, VectorCache
from app.generators.units import source_units
from app.settings import Settings
from app.sources import Source
from ingest.embedders import HashingEmbedder

MD_TABLE = """## First-response targets

The first-response target is the time until the first reply from a person.

| Priority | Team | Business | Enterprise |
| --- | --- | --- | --- |
| Priority 1 | 4 business hours | 1 hour | 15 minutes |
| Priority 2 | 8 business hours | 4 hours | 1 hour |

Targets for Business are measured within the Business support hours."""
# what the HTML loader makes of a <table>: one row per paragraph, cells joined by " | "
HTML_TABLE = """Business plan service credits

Monthly Uptime Percentage | Service credit

At least 99.0% but below 99.9% | 10% of the monthly fee

At least 95.0% but below 99.0% | 25% of the monthly fee

Below 95.0% | 50% of the monthly fee"""
NEIGHBOURS = ("API v1 is deprecated. It will be removed on 30 June 2026. Integrations should "
              "move to API v2 before that date.")
PARAPHRASE = ("Invoices are sent by email each month. Customers are reimbursed in full if they "
              "cancel within 30 days. Seats can be added at any time.")


def _source(n: int, text: str, path: str = "doc.md", heading: tuple[str, ...] = ()) -> Source:
    return Source(n, path, None, 0, len(text), text, 1.0 - n / 10, heading)


def _checked(answer: str, sources: list[Source]) -> None:
    """Every sentence carries a valid marker and is supported by the passage it cites."""
    checked = check_answer(answer, sources)
    assert (checked.answer, checked.unsupported, checked.invalid_markers) == (answer, [], [])
    assert checked.cited


class Concepts:
    """A deterministic embedder: a text's vector counts the concepts its words belong to, so
    "reimbursed" and "money back" meet although they share no word. Counts its calls."""

    CONCEPTS = [{"money", "reimbursed", "refund"}, {"invoices", "email", "sent"},
                {"seats", "added"}]

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            words = {w.strip(".,?!:").lower() for w in text.split()}
            v = np.array([len(words & c) for c in self.CONCEPTS] + [0.1], dtype=np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows)


def test_a_markdown_table_row_is_read_with_its_header_and_caption() -> None:
    sources = [_source(1, MD_TABLE)]
    rows = [u.text for u in source_units(sources[0], 0) if u.row]
    assert rows == [
        "First-response targets — Priority: Priority 1 | Team: 4 business hours | "
        "Business: 1 hour | Enterprise: 15 minutes",
        "First-response targets — Priority: Priority 2 | Team: 8 business hours | "
        "Business: 4 hours | Enterprise: 1 hour"]
    answer = ExtractiveGenerator().generate(
        "What is the first response target for a Priority 1 ticket on the Business plan?", sources)
    assert "Priority: Priority 1 | Team: 4 business hours | Business: 1 hour" in answer
    assert "| --- |" not in answer and "Priority 2" not in answer
    _checked(answer, sources)


def test_an_html_table_row_is_read_with_its_header() -> None:
    sources = [_source(1, HTML_TABLE, "sla.html")]
    rows = [u.text for u in source_units(sources[0], 0)]
    assert rows[1] == ("Business plan service credits — Monthly Uptime Percentage: At least "
                       "95.0% but below 99.0% | Service credit: 25% of the monthly fee")
    assert len(rows) == 3  # the header row is no unit of its own
    answer = ExtractiveGenerator().generate(
        "What service credit does a Business customer get below 95.0% uptime?", sources)
    assert "Monthly Uptime Percentage: Below 95.0% | Service credit: 50% of the monthly fee [1]" \
        in answer
    _checked(answer, sources)


def test_a_row_quotes_the_caption_only_when_the_passage_has_it() -> None:
    rows = MD_TABLE[MD_TABLE.index("| Priority |"):MD_TABLE.index("\n\nTargets")]
    sources = [_source(1, rows, heading=("Support", "First-response targets"))]
    units = source_units(sources[0], 0)
    assert units[0].text == ("Priority: Priority 1 | Team: 4 business hours | Business: 1 hour | "
                             "Enterprise: 15 minutes")
    assert units[0].scored.startswith("First-response targets: ")  # scored with it, though
    answer = ExtractiveGenerator().generate("What is the Business target for Priority 2?", sources)
    assert "Priority: Priority 2 | Team: 8 business hours | Business: 4 hours" in answer
    assert "First-response targets" not in answer
    _checked(answer, sources)


def test_the_sentence_an_it_refers_to_comes_with_it() -> None:
    sources = [_source(1, NEIGHBOURS)]
    answer = ExtractiveGenerator(max_sentences=2).generate("When will it be removed?", sources)
    # "It will be removed..." alone does not say what; the sentence before it does
    assert answer == "API v1 is deprecated [1]. It will be removed on 30 June 2026 [1]."
    _checked(answer, sources)


def test_the_next_sentence_comes_when_it_holds_the_number_asked_for() -> None:
    text = ("Refund requests are reviewed by the billing team. Approved refunds reach the card "
            "within 10 business days. Partial months are not refunded.")
    sources = [_source(1, text)]
    answer = ExtractiveGenerator(max_sentences=2).generate(
        "How long does a refund request review take?", sources)
    assert answer.startswith("Refund requests are reviewed by the billing team [1]. Approved "
                             "refunds reach the card within 10 business days [1].")
    _checked(answer, sources)


def test_a_fact_without_the_questions_words_is_found_through_the_embedder() -> None:
    sources = [_source(1, PARAPHRASE)]
    question = "Can I get my money back?"
    words_alone = ExtractiveGenerator().generate(question, sources)
    assert "reimbursed" not in words_alone  # no word in common: the first sentence, by rank
    embed = Concepts()
    answer = ExtractiveGenerator(embed=embed).generate(question, sources)
    assert answer == "Customers are reimbursed in full if they cancel within 30 days [1]."
    _checked(answer, sources)


def test_the_real_embedder_finds_the_paraphrase(real_embedder) -> None:
    sources = [_source(1, PARAPHRASE)]
    gen = ExtractiveGenerator(embed=lambda texts: real_embedder.embed(texts, urgent=True))
    answer = gen.generate("Can I get my money back?", sources)
    assert answer == "Customers are reimbursed in full if they cancel within 30 days [1]."


def test_unit_vectors_are_cached_and_only_a_shortlist_is_embedded() -> None:
    text = " ".join(f"Sentence number {i} is about invoices sent by email." for i in range(20))
    sources = [_source(1, text)]
    embed = Concepts()
    gen = ExtractiveGenerator(embed=embed, shortlist=5)
    first = gen.generate("Are invoices sent by email?", sources)
    assert len(embed.calls) == 1 and len(embed.calls[0]) == 1 + 5  # the question and 5 units
    assert gen.generate("Are invoices sent by email?", sources) == first
    assert len(embed.calls) == 1  # all cached


def test_vector_cache_drops_the_least_recently_used() -> None:
    cache, embed = VectorCache(2), Concepts()
    cache.vectors(["a", "b"], embed)
    cache.vectors(["a"], embed)  # "a" used again: "b" is now the oldest
    cache.vectors(["c"], embed)
    cache.vectors(["a", "b"], embed)
    assert embed.calls == [["a", "b"], ["c"], ["b"]]


def test_without_an_embedder_or_when_it_fails_the_words_decide() -> None:
    sources = [_source(1, NEIGHBOURS), _source(2, HTML_TABLE, "sla.html")]
    question = "When will API v1 be removed?"
    alone = ExtractiveGenerator().generate(question, sources)
    assert "30 June 2026 [1]" in alone
    _checked(alone, sources)

    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("the embedder is gone")

    assert ExtractiveGenerator(embed=broken).generate(question, sources) == alone


def test_build_generator_wires_the_services_embedder() -> None:
    settings = Settings(generator="extractive", embedder="hashing")
    embedder = HashingEmbedder()
    with_embedder = build_generator(settings, embedder)
    assert with_embedder._embed is not None
    assert with_embedder._embed(["x"]).shape == (1, embedder.dim)
    assert build_generator(settings)._embed is None
    words_only = Settings(generator="extractive", embedder="hashing", extractive_embed=False)
    assert build_generator(words_only, embedder)._embed is None  # RAG_EXTRACTIVE_EMBED=false


@pytest.mark.parametrize("kwargs", [{"max_sentences": 0}, {"shortlist": 0},
                                    {"semantic_weight": 1.5}, {"cache_size": -1}])
def test_bad_options_are_refused_when_built(kwargs) -> None:
    with pytest.raises(ValueError):
        ExtractiveGenerator(**kwargs)


def test_a_follow_up_s_sentences_are_chosen_for_its_standalone_form() -> None:
    from app.conversation import Turn

    text = ("Monthly plans are billed on the first day of each month. Monthly plans come with "
            "email support only. Monthly plans can be refunded within 7 days of purchase.")
    sources = [Source(1, "kb/plans.md", None, 0, len(text), text, 0.9)]
    history = (Turn("user", "How long do I have to get a full refund on an annual plan?"),
               Turn("assistant", "Within 30 days [1]."))
    generator = ExtractiveGenerator(max_sentences=1)
    alone = generator.generate("And for monthly plans?", sources)
    followed = generator.generate("And for monthly plans?", sources, history=history)
    assert "7 days" in followed and "7 days" not in alone


def test_a_follow_up_s_answer_opens_with_what_it_asked() -> None:
    from app.conversation import Turn

    annual = "Annual plans can be refunded in full within 30 days of purchase."
    monthly = "Monthly plans can be refunded in full within 7 days of purchase."
    sources = [Source(1, "kb/annual.md", None, 0, len(annual), annual, 0.9),
               Source(2, "kb/monthly.md", None, 0, len(monthly), monthly, 0.8)]
    history = (Turn("user", "How long do I have to get a full refund on an annual plan?"),
               Turn("assistant", "Within 30 days [1]."))
    answer = ExtractiveGenerator().generate("And for monthly plans?", sources, history=history)
    assert answer.startswith("Monthly plans can be refunded") and "[2]" in answer
