"""Citation checking: [n] markers parsed, markers to nowhere removed and reported, every answer
sentence checked against the passages it cites (terms and numbers first, embeddings to rescue a
faithful paraphrase)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from app.citations import SEMANTIC_MIN, check_answer
from app.sources import Source

REFUNDS = ("Refunds are issued within 10 business days after the returned item is received. "
           "Items must be returned in their original packaging.")
SHIPPING = "Express shipping costs 12 euros and arrives the next business day."
WARRANTY = "The warranty covers manufacturing defects for 24 months from the date of purchase."

SOURCES = [
    Source(1, "policies/refunds.md", None, 0, len(REFUNDS), REFUNDS, 0.9),
    Source(2, "faq/shipping.pdf", 3, 40, 40 + len(SHIPPING), SHIPPING, 0.7),
    Source(3, "policies/warranty.html", None, 10, 10 + len(WARRANTY), WARRANTY, 0.5),
]


def test_verbatim_sentence_with_its_marker_is_supported() -> None:
    answer = "Refunds are issued within 10 business days after the returned item is received [1]."
    checked = check_answer(answer, SOURCES)
    assert checked.answer == answer
    assert checked.unsupported == []
    assert checked.invalid_markers == []
    assert [s.n for s in checked.cited] == [1]
    assert checked.cited[0] is SOURCES[0]


def test_marker_list_keeps_the_valid_numbers_and_reports_the_others() -> None:
    checked = check_answer("Refunds are issued within 10 business days [1, 9].", SOURCES)
    assert checked.answer == "Refunds are issued within 10 business days [1]."
    assert checked.invalid_markers == [9]
    assert [s.n for s in checked.cited] == [1]
    assert checked.unsupported == []


def test_marker_to_no_source_is_removed_entirely() -> None:
    checked = check_answer("Express shipping costs 12 euros [9]. Refunds take 10 business days [0][1].",
                           SOURCES)
    assert "[9]" not in checked.answer and "[0]" not in checked.answer
    assert checked.answer == "Express shipping costs 12 euros. Refunds take 10 business days [1]."
    assert checked.invalid_markers == [0, 9]
    assert [s.n for s in checked.cited] == [1]
    # With its only marker gone, the first sentence cites nothing: a claim without support.
    assert checked.unsupported == ["Express shipping costs 12 euros."]


def test_invalid_markers_are_reported_once_and_sorted() -> None:
    checked = check_answer("Shipping costs 12 euros [7, 2]. Shipping arrives the next business "
                           "day [7][5].", SOURCES)
    assert checked.invalid_markers == [5, 7]
    assert checked.answer == ("Shipping costs 12 euros [2]. Shipping arrives the next business "
                              "day.")


def test_invented_number_is_unsupported_even_when_every_word_matches() -> None:
    answer = "Refunds are issued within 14 business days after the returned item is received [1]."
    checked = check_answer(answer, SOURCES)
    assert checked.unsupported == [
        "Refunds are issued within 14 business days after the returned item is received."]
    assert checked.answer == answer  # reported, not removed (drop_unsupported is off)


def test_number_from_another_uncited_source_is_unsupported() -> None:
    # 12 is in source 2, but the sentence cites only source 1.
    checked = check_answer("Refunds are issued within 12 business days [1].", SOURCES)
    assert checked.unsupported == ["Refunds are issued within 12 business days."]


def test_sentence_citing_the_wrong_source_is_unsupported() -> None:
    checked = check_answer("Express shipping costs 12 euros and arrives the next business day [1].",
                           SOURCES)
    assert checked.unsupported == [
        "Express shipping costs 12 euros and arrives the next business day."]
    # ... and with the right source it is supported.
    fixed = check_answer("Express shipping costs 12 euros and arrives the next business day [2].",
                         SOURCES)
    assert fixed.unsupported == []


def test_factual_sentence_without_a_marker_is_unsupported() -> None:
    checked = check_answer("Refunds are issued within 10 business days after the returned item "
                           "is received.", SOURCES)
    assert checked.unsupported == [
        "Refunds are issued within 10 business days after the returned item is received."]
    assert checked.cited == []
    assert checked.invalid_markers == []


@pytest.mark.parametrize("short", ["Yes.", "No.", "Sure, here it is:", "In short:"])
def test_short_non_claims_are_not_flagged(short: str) -> None:
    checked = check_answer(f"{short} Refunds are issued within 10 business days [1].", SOURCES)
    assert checked.unsupported == []
    assert checked.answer.startswith(short)


def test_short_sentence_with_a_number_is_still_checked() -> None:
    # Few words, but a number is a claim: "14" appears in no source.
    checked = check_answer("Yes. It costs 14 euros [2].", SOURCES)
    assert checked.unsupported == ["It costs 14 euros."]


def test_numbered_list_items_are_checked_without_their_numbers() -> None:
    answer = ("1. Refunds are issued within 10 business days [1].\n"
              "2. Express shipping costs 12 euros [2].\n"
              "  3) The warranty covers manufacturing defects for 24 months [3].")
    checked = check_answer(answer, SOURCES)
    assert checked.answer == answer
    assert checked.unsupported == []  # "1." and "3)" are not claims that 1 or 3 is a fact
    assert [s.n for s in checked.cited] == [1, 2, 3]


def test_numbered_list_item_with_an_invented_number_is_dropped_whole() -> None:
    answer = ("1. Refunds are issued within 10 business days [1].\n"
              "2. Express shipping costs 99 euros [2].\n"
              "3. Shipping is cheap everywhere.")
    checked = check_answer(answer, SOURCES, drop_unsupported=True)
    assert checked.unsupported == ["2. Express shipping costs 99 euros.",
                                   "3. Shipping is cheap everywhere."]
    assert checked.answer == "1. Refunds are issued within 10 business days [1]."
    assert [s.n for s in checked.cited] == [1]


def test_a_number_that_is_not_a_list_enumerator_is_still_checked() -> None:
    # "5." ends a sentence mid-line: it states a number, and source 1 does not say 5.
    checked = check_answer("Refunds take days [1]. 5. Refunds are issued within 10 business "
                           "days [1].", SOURCES)
    assert checked.unsupported == ["5."]


def test_drop_unsupported_removes_sentences_and_their_citations() -> None:
    answer = ("Express shipping costs 99 euros [2]. "
              "Refunds are issued within 10 business days [1]. "
              "The warranty covers manufacturing defects for 36 months [3].")
    kept = check_answer(answer, SOURCES)
    assert kept.answer == answer
    assert [s.n for s in kept.cited] == [2, 1, 3]
    assert kept.unsupported == ["Express shipping costs 99 euros.",
                                "The warranty covers manufacturing defects for 36 months."]

    dropped = check_answer(answer, SOURCES, drop_unsupported=True)
    assert dropped.answer == "Refunds are issued within 10 business days [1]."
    assert [s.n for s in dropped.cited] == [1]
    assert dropped.unsupported == kept.unsupported  # still reported


def test_drop_unsupported_keeps_a_source_still_cited_by_a_supported_sentence() -> None:
    answer = ("Express shipping costs 99 euros [2]. "
              "Express shipping arrives the next business day [2]. "
              "Refunds are issued within 10 business days [1].")
    dropped = check_answer(answer, SOURCES, drop_unsupported=True)
    assert dropped.answer == ("Express shipping arrives the next business day [2]. "
                              "Refunds are issued within 10 business days [1].")
    assert [s.n for s in dropped.cited] == [2, 1]


def test_drop_unsupported_changes_nothing_when_all_is_supported() -> None:
    answer = "Refunds are issued within 10 business days [1].\n\nShipping costs 12 euros [2]."
    assert check_answer(answer, SOURCES, drop_unsupported=True).answer == answer


def test_cited_sources_are_listed_in_order_of_first_citation() -> None:
    answer = ("The warranty covers defects for 24 months [3]. "
              "Express shipping costs 12 euros [2, 3]. "
              "Refunds are issued within 10 business days [1][2].")
    checked = check_answer(answer, SOURCES)
    assert [s.n for s in checked.cited] == [3, 2, 1]
    assert checked.unsupported == []


def test_a_sentence_may_be_supported_by_several_cited_sources_together() -> None:
    checked = check_answer("Refunds take 10 business days and express shipping costs 12 euros "
                           "[1, 2].", SOURCES)
    assert checked.unsupported == []
    only_one = check_answer("Refunds take 10 business days and express shipping costs 12 euros "
                            "[1].", SOURCES)
    assert only_one.unsupported  # 12 is not in source 1


def test_empty_answer_and_no_sources() -> None:
    checked = check_answer("", SOURCES)
    assert (checked.answer, checked.cited, checked.unsupported, checked.invalid_markers) == \
        ("", [], [], [])
    nothing = check_answer("Refunds take 10 days [1].", [])
    assert nothing.answer == "Refunds take 10 days."
    assert nothing.invalid_markers == [1]
    assert nothing.unsupported == ["Refunds take 10 days."]


# --- The embedding rescue --------------------------------------------------------------------

PARAPHRASE = "Shoppers get their money back in ten working days"  # few of source 1's terms


def _unit(angle_cos: float) -> np.ndarray:
    """A 2-d unit vector whose cosine with (1, 0) is `angle_cos`."""
    return np.array([angle_cos, math.sqrt(1.0 - angle_cos ** 2)])


class FakeEmbed:
    """Fixed unit vectors: every source text on (1, 0), each claim at a chosen cosine to it."""

    def __init__(self, cosines: dict[str, float]) -> None:
        self.cosines = cosines
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for t in texts:
            if t in (REFUNDS, SHIPPING, WARRANTY):
                rows.append(np.array([1.0, 0.0]))
            else:
                rows.append(_unit(self.cosines[t]))
        return np.vstack(rows)


def test_paraphrase_is_lexically_undecided_without_an_embedder() -> None:
    checked = check_answer(f"{PARAPHRASE} [1].", SOURCES)
    assert checked.unsupported == [f"{PARAPHRASE}."]


@pytest.mark.parametrize("cosine, supported", [(0.9, True), (SEMANTIC_MIN, True),
                                               (0.74, False), (0.2, False)])
def test_paraphrase_is_rescued_by_embedding_similarity(cosine: float, supported: bool) -> None:
    assert SEMANTIC_MIN == 0.75
    embed = FakeEmbed({f"{PARAPHRASE}.": cosine})
    checked = check_answer(f"{PARAPHRASE} [1].", SOURCES, embed=embed)
    assert checked.unsupported == ([] if supported else [f"{PARAPHRASE}."])
    # One call: the undecided claim (markers stripped) and the passages it cites.
    assert embed.calls == [[f"{PARAPHRASE}.", REFUNDS]]


def test_embedding_rescue_uses_the_best_cited_passage() -> None:
    texts = {f"{PARAPHRASE}.": 0.8}
    embed = FakeEmbed(texts)
    # Claim vs source 3 and source 1 (both on (1, 0)): cosine 0.8 with either.
    checked = check_answer(f"{PARAPHRASE} [3, 1].", SOURCES, embed=embed)
    assert checked.unsupported == []
    assert len(embed.calls) == 1
    assert sorted(embed.calls[0][1:]) == sorted([REFUNDS, WARRANTY])


def test_embedder_is_not_called_when_every_sentence_is_decided_lexically() -> None:
    embed = FakeEmbed({})
    answer = ("Yes. Refunds are issued within 10 business days [1]. "  # no claim; supported
              "Express shipping costs 99 euros [2]. "  # invented number: never rescued
              "The warranty covers manufacturing defects for 24 months.")  # no marker
    checked = check_answer(answer, SOURCES, embed=embed)
    assert embed.calls == []
    assert checked.unsupported == ["Express shipping costs 99 euros.",
                                   "The warranty covers manufacturing defects for 24 months."]


def test_embedding_cannot_rescue_an_invented_number() -> None:
    embed = FakeEmbed({})  # would raise KeyError if asked about the claim
    checked = check_answer("Shoppers get their money back in 30 working days [1].", SOURCES,
                           embed=embed)
    assert embed.calls == []
    assert checked.unsupported == ["Shoppers get their money back in 30 working days."]


def test_only_undecided_sentences_are_embedded() -> None:
    embed = FakeEmbed({f"{PARAPHRASE}.": 0.95,
                       "Parcels sent the quick way land on your doorstep tomorrow.": 0.3})
    answer = (f"Refunds are issued within 10 business days [1]. {PARAPHRASE} [1]. "
              "Parcels sent the quick way land on your doorstep tomorrow [2].")
    checked = check_answer(answer, SOURCES, embed=embed)
    assert checked.unsupported == ["Parcels sent the quick way land on your doorstep tomorrow."]
    assert len(embed.calls) == 1
    claims, passages = embed.calls[0][:2], embed.calls[0][2:]
    assert claims == [f"{PARAPHRASE}.", "Parcels sent the quick way land on your doorstep tomorrow."]
    assert sorted(passages) == sorted([REFUNDS, SHIPPING])


def test_a_sentence_without_the_sources_accents_is_still_supported() -> None:
    source = Source(1, "cafe.md", None, 0, 44, "Café Trésor serves crêpes on Thursdays only.",
                    0.5)
    checked = check_answer("Cafe Tresor serves crepes on Thursdays [1].", [source])
    assert checked.unsupported == [] and checked.cited == [source]
