"""BM25 on PostgreSQL, scored as SQLite's FTS5 scores it.

Core PostgreSQL ranks full-text matches with `ts_rank`, which is not BM25 (published SciFact
nDCG@10 0.57-0.61 against 0.686 for FTS5's BM25), and the test server ships no BM25 extension,
so the ingest keeps the statistics BM25 needs in ordinary tables, in the same transaction as the
chunks: a posting per (term, chunk) with the term's frequency and the chunk's length, and each
term's document frequency. A query reads the postings of its terms through a b-tree
(index-only) and sums FTS5's formula over them in SQL.

Terms are made in Python as FTS5's tokenizer makes them (ingest.store.bm25), so the two stores
rank alike.
"""
from __future__ import annotations

import re


def glob_regex(glob: str) -> str:
    """An fnmatch-style glob (as SQLite's GLOB reads it: `*` and `?` across folders, `[...]`
    and `[^...]` classes, case-sensitive) as an anchored POSIX regular expression."""
    out, i = ["^"], 0
    while i < len(glob):
        ch = glob[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[" and (end := glob.find("]", i + 2 if glob[i + 1:i + 2] in ("^", "!")
                                              else i + 1)) != -1:
            body = glob[i + 1:end]
            negate = body[:1] in ("^", "!")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\")
            out.append("[" + ("^" if negate else "") + body + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out) + "$"
