"""Text tools that both sides use (app/ depends on ingest/, never the reverse, so they live here):
trimming spans to their content, and folding words so that the variants people type meet the
document's: a word typed without its accents ("Cafe Tresor") meets the same word written with
them, as it does in the lexical index (FTS5's `remove_diacritics`)."""
from __future__ import annotations

import re
import unicodedata

# The combining marks that NFKD splits off letters (accents, cedillas, umlauts...).
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """Diacritics removed (as FTS5 removes them), case folded, NFKC: "Crêpes", "CRÊPES" and
    "crepes" are one word, and so are full-width "１０" and "10" (which FTS5 keeps apart: the
    folding is for comparing the question's words with the passages', not a copy of the
    index's tokenizer). Use it wherever words are compared."""
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
