"""ingest/text.py: the text tools both sides share."""
from __future__ import annotations

import pytest

from app.text import numbers, terms
from ingest.text import fold, strip_spans


@pytest.mark.parametrize("raw,folded", [
    ("Crêpes", "crepes"), ("CAFÉ TRÉSOR", "cafe tresor"),
    ("Ångström naïve façade", "angstrom naive facade"),
    ("ＣＡＦＥ １０", "cafe 10"),  # full-width letters and digits (NFKC)
    ("ﬁle", "file"),  # a ligature
    ("Straße", "strasse"),  # case folding, not only lower-casing
    ("plain ASCII Text", "plain ascii text"),
])
def test_fold_makes_the_variants_people_type_one_word(raw, folded):
    assert fold(raw) == folded


def test_terms_and_numbers_meet_across_accents_and_widths():
    assert terms("Café Trésor serves crêpes") == terms("cafe tresor serve crepes")
    assert numbers("１０ days and 1,200 seats") == {"10", "1200"}


def test_strip_spans_trims_and_drops_blank_spans():
    text = "  a b \n\n   \t c"
    assert strip_spans(text, [(0, 6), (6, 11), (11, len(text))]) == [(2, 5), (13, 14)]
