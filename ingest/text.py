"""Text tools that both sides use (app/ depends on ingest/, never the reverse, so they live here):
trimming spans to their content, and folding words the way the lexical index does, so that a
word typed without its accents ("Cafe Tresor") meets the same word written with them."""
from __future__ import annotations

import re
import unicodedata

# The combining marks that NFKD splits off Latin, Greek and Cyrillic letters: what FTS5's
# `remove_diacritics` drops too.
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """Unicode NFKC, case folded, diacritics removed: "Crêpes", "CRÊPES" and "crepes" are one
    word, and so are full-width "１０" and "10". Use it wherever words are compared."""
    if text.isascii():
        return text.lower()  # the common case, and casefold() is lower() on ASCII
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return unicodedata.normalize("NFC", _COMBINING.sub("", decomposed))


def strip_spans(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop leading/trailing whitespace from spans, and spans that are only whitespace."""
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            out.append((s, e))
    return out
