"""Citations you can trust: parse [n] markers, drop the ones that point at no source, and check
each answer sentence against the passages it cites.

A sentence is supported when its cited passages contain at least SUPPORT_MIN of its content
terms and every number it states; an embedding check (cosine >= SEMANTIC_MIN against a cited
passage) can rescue a faithful paraphrase, never an invented number. A sentence that states
something but cites nothing is unsupported.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from app.sources import Source
from app.text import LIST_NUMBER, numbers, sentence_spans, terms

SUPPORT_MIN = 0.6
SEMANTIC_MIN = 0.75
_LEADING_LIST_NUMBER = re.compile(rf"^{LIST_NUMBER.pattern}(?:\s+|$)")
_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
# A numbered list's "1." or "2)" opening a line is no claim: its number is not checked.


@dataclass
class CheckedAnswer:
    answer: str  # invalid markers removed (and unsupported sentences, if asked)
    cited: list[Source] = field(default_factory=list)  # sources cited, by first citation
    unsupported: list[str] = field(default_factory=list)
    invalid_markers: list[int] = field(default_factory=list)


def _clean(sentence: str) -> str:
    return " ".join(_MARKER.sub("", sentence).split())


def _at_line_start(text: str, pos: int) -> bool:
    while pos > 0 and text[pos - 1] in " \t":
        pos -= 1
    return pos == 0 or text[pos - 1] == "\n"


def check_answer(answer: str, sources: Sequence[Source],
                 embed: Callable[[list[str]], np.ndarray] | None = None,
                 drop_unsupported: bool = False) -> CheckedAnswer:
    by_n = {s.n: s for s in sources}
    invalid: list[int] = []

    def keep_valid(m: re.Match) -> str:
        nums = [int(x) for x in m.group(1).split(",")]
        valid = [x for x in nums if x in by_n]
        invalid.extend(x for x in nums if x not in by_n)
        return f" [{', '.join(map(str, valid))}]" if valid else ""

    text = _MARKER.sub(keep_valid, answer).strip()
    cited_order: list[int] = []
    verdicts: list[tuple[str, list[int], bool | None]] = []  # None: needs the embedding check
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        marks = [int(x) for m in _MARKER.finditer(sentence) for x in m.group(1).split(",")]
        for x in marks:
            if x not in cited_order:
                cited_order.append(x)
        claim = _clean(sentence)
        if _at_line_start(text, start):
            claim = _LEADING_LIST_NUMBER.sub("", claim, count=1)
        words = set(terms(claim))
        if len(words) < 3 and not numbers(claim):
            verdicts.append((sentence, marks, True))  # no claim to check ("Yes.", a heading)
            continue
        if not marks:
            verdicts.append((sentence, marks, False))
            continue
        passages = " ".join(by_n[x].text for x in marks)
        if not numbers(claim) <= numbers(passages):
            verdicts.append((sentence, marks, False))  # a number the sources do not state
            continue
        have = set(terms(passages))
        overlap = len(words & have) / len(words) if words else 1.0
        verdicts.append((sentence, marks, True if overlap >= SUPPORT_MIN else None))

    pending = [i for i, v in enumerate(verdicts) if v[2] is None]
    if pending and embed is not None:
        claims = [_clean(verdicts[i][0]) for i in pending]
        cited_texts = sorted({by_n[x].text for i in pending for x in verdicts[i][1]})
        vecs = embed(claims + cited_texts)
        index = {t: len(claims) + j for j, t in enumerate(cited_texts)}
        for row, i in enumerate(pending):
            sentence, marks, _ = verdicts[i]
            best = max(float(vecs[row] @ vecs[index[by_n[x].text]]) for x in marks)
            verdicts[i] = (sentence, marks, best >= SEMANTIC_MIN)

    unsupported = [_clean(s) for s, _, ok in verdicts if not ok]
    if drop_unsupported and unsupported:
        text = " ".join(s for s, _, ok in verdicts if ok)
        kept_marks = {x for s, m, ok in verdicts if ok for x in m}
        cited_order = [x for x in cited_order if x in kept_marks]
    return CheckedAnswer(text, [by_n[x] for x in cited_order], unsupported,
                         sorted(set(invalid)))
