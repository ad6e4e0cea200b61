"""Small text tools shared by the extractive generator, the citation checker and abstention:
sentence splitting, content terms (folded as the lexical index folds them: NFKC, case,
diacritics; stop words dropped; crudely stemmed) and numbers."""
from __future__ import annotations

import re
from functools import lru_cache

from ingest.text import fold, strip_spans

STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not now of off on once only or other our ours ourselves out
over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves does what's whats many
much also may might must shall within per via get gets got tell""".split())

WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A citation marker as answers write them, with the space before it: " [1]", " [2, 3]" (also
# what a document's own bracketed numbers look like, "[2020]", which an answer must not quote)
MARKERS = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
LIST_NUMBER = re.compile(r"\d{1,3}[.)]")  # "1." or "2)" opening a numbered list item
# A sentence ends at . ! ? (optionally followed by a closing quote/bracket or [n] markers)
# before whitespace; a line break that ends a list item, heading or table row ends one too.
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:[\"')\]]|\s*\[\d+(?:\s*,\s*\d+)*\])*\s+|\n\s*\n|\n(?=\s*[-*#|\d])")


def stem(word: str) -> str:
    """A light English stemmer: plurals and -ing/-ed, so "pages" meets "page"."""
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]  # "refine"/"refined" -> "refin"
    return word


@lru_cache(maxsize=4096)  # ~7 KB per 1,000-character text: ~30 MB at most
def terms(text: str) -> tuple[str, ...]:
    """Content terms: folded words (see ingest.text.fold) minus stop words, stemmed. Cached:
    the same passages come back in answer after answer, and their terms were 15% of the time
    an /ask holds the GIL (the extractive generator's units, the term coverage)."""
    return tuple(stem(w) for w in (m.group() for m in WORD.finditer(fold(text)))
                 if w not in STOP_WORDS)


def numbers(text: str) -> set[str]:
    """The numbers a text states, thousands separators dropped ("1,200" is "1200")."""
    return {n.replace(",", "") for n in _NUMBER.findall(fold(text))}


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, whitespace trimmed, in order."""
    spans, pos = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    out = strip_spans(text, spans)
    # "1. Refunds take 10 days." is one sentence, not "1." and "Refunds take 10 days.": a list
    # item's number at the start of a line stays with the item's text.
    merged: list[tuple[int, int]] = []
    for s, e in out:
        if merged:
            ps, pe = merged[-1]
            line_start = text.rfind("\n", 0, ps) + 1
            if (LIST_NUMBER.fullmatch(text, ps, pe) and not text[line_start:ps].strip()
                    and "\n" not in text[pe:s] and not LIST_NUMBER.fullmatch(text, s, e)):
                merged[-1] = (ps, e)
                continue
        merged.append((s, e))
    return merged
