"""BM25 as SQLite's FTS5 scores it, for the stores that score it themselves: the terms (FTS5's
`porter unicode61 remove_diacritics 2` tokenizer: letters and digits, case and diacritics
folded, the original Porter stemmer from snowballstemmer), FTS5's formula, and the
"common terms" cut. The Postgres store sums it in SQL; the SQLite store's in-memory index
(sqlite/lexical.py) in numpy. Our own copy of the tokenizer because no library exposes FTS5's;
the stemmer is the well-kept library's.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

import snowballstemmer

from ingest.text import fold

K1, B = 1.2, 0.75  # FTS5's bm25() defaults
MAX_ROWS = 10_000  # postings a lexical query reads at most, on every store (see `rarest`)
_TOKEN = re.compile(r"[^\W_]+")
_STEMMER = snowballstemmer.stemmer("porter")


@lru_cache(maxsize=200_000)
def _stem(token: str) -> str:
    # FTS5's porter tokenizer leaves tokens under 3 or over 64 characters as they are
    if len(token) < 3 or len(token) > 64 or not token.isascii():
        return token
    return _STEMMER.stemWord(token)


def terms(text: str) -> list[str]:
    """The text's terms, in order, repeats kept: what the lexical index counts."""
    return [_stem(t) for t in _TOKEN.findall(fold(text))]


def postings(text: str) -> tuple[Counter, int]:
    """(term -> frequency, the text's length in terms)."""
    found = terms(text)
    return Counter(found), len(found)


def query_terms(query: str) -> list[str]:
    """The distinct terms of a query, in order: any of them may match (OR)."""
    return list(dict.fromkeys(terms(query)))


def idf(df: int, total: int) -> float:
    """FTS5's inverse document frequency: never zero or below, so a word in every chunk still
    counts a little."""
    value = math.log((total - df + 0.5) / (df + 0.5))
    return value if value > 0 else 1e-6


def rarest(dfs: dict[str, int], max_rows: int) -> list[str]:
    """The query's terms when their postings are few; else only its rarest ones, together
    matching at most `max_rows` (at least one term): Lucene's "common terms" idea, as the
    SQLite store does it. Common words weigh little in BM25 anyway."""
    present = [t for t in dfs if dfs[t] > 0]
    if len(present) < 2 or sum(dfs[t] for t in present) <= max_rows:
        return present
    kept, rows = [], 0
    for term in sorted(present, key=lambda t: (dfs[t], t)):
        if kept and rows + dfs[term] > max_rows:
            break
        kept.append(term)
        rows += dfs[term]
    return kept
