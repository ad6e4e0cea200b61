"""The model-free generator: the answer is made of the sources' own sentences that best match
the question, each followed by its source's [n] marker. Deterministic and fast (no model call:
sentences are scored by the question's content terms they contain, weighted by how rare each
term is among the candidate sentences, with the source's rank breaking ties)."""
from __future__ import annotations

import math
import re
from typing import Sequence

from app.generators import TextStream
from app.sources import Source
from app.text import sentence_spans, terms

MAX_SENTENCES = 3
MAX_SENTENCE_CHARS = 600
_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")
_EMPHASIS = re.compile(r"\*\*|__|`")
_ASKS_QUANTITY = re.compile(r"\b(how (long|many|much|often|soon|quickly|fast|big|large)|when|"
                            r"what (percentage|price|date|time|limit))\b", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
_BRACKETED = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def _looks_like_heading(text: str) -> bool:
    """A title line (HTML and PDF headings carry no "#"): short and without a full stop."""
    return text[-1] not in ".!?:;)" and len(text.split()) < 10


class ExtractiveGenerator:
    name = "extractive"
    model = None

    def __init__(self, max_sentences: int = MAX_SENTENCES) -> None:
        self.max_sentences = max_sentences

    def warm_up(self) -> None:
        return None  # no model

    def close(self) -> None:
        return None

    def generate(self, question: str, sources: Sequence[Source],
                 deadline: float | None = None, history: Sequence = ()) -> str:
        return "".join(self.stream(question, sources))

    def stream(self, question: str, sources: Sequence[Source],
               deadline: float | None = None, history: Sequence = ()) -> TextStream:
        # no model: no deadline to keep; the sentences are chosen for the question itself
        for i, sentence in enumerate(self.select(question, sources)):
            yield ("" if i == 0 else " ") + sentence

    def select(self, question: str, sources: Sequence[Source]) -> list[str]:
        wanted = set(terms(question))
        candidates = []  # (source rank, position, sentence text, its terms)
        for rank, source in enumerate(sources):
            for pos, (s, e) in enumerate(sentence_spans(source.text)):
                raw = source.text[s:e]
                if "```" in raw or "~~~" in raw:
                    continue  # code, not prose
                # a bracketed number copied from a document ("[3]", "[2020]") would read as
                # a citation marker
                text = _BRACKETED.sub("", _EMPHASIS.sub("", _MARKUP.sub("", raw)))
                text = " ".join(text.split())
                words = set(terms(text))
                if (len(words) < 3 or len(text) > MAX_SENTENCE_CHARS or text.startswith("|")
                        or raw.lstrip().startswith("#") or _looks_like_heading(text)):
                    continue
                candidates.append((rank, pos, text, words, source.n))
        if not candidates:  # only headings, tables or code: quote the best passage's start
            best = sources[0] if sources else None
            if best is None or not best.text.strip():
                return []
            first = " ".join(_BRACKETED.sub("", best.text).split())[:MAX_SENTENCE_CHARS]
            return [f"{first.rstrip('.')} [{best.n}]."]
        df = {t: sum(1 for c in candidates if t in c[3]) for t in wanted}
        idf = {t: math.log(1 + len(candidates) / df[t]) for t in wanted if df[t]}

        # "How long / many / much / when ..." asks for a quantity: prefer sentences stating one.
        quantity = 0.5 * max(idf.values(), default=0.0) if _ASKS_QUANTITY.search(question) else 0

        def score(c) -> float:
            hit = sum(idf.get(t, 0.0) for t in wanted & c[3])
            if hit and quantity and _DIGIT.search(c[2]):
                hit += quantity
            return hit / math.sqrt(len(c[3])) - 0.01 * c[0]

        scored = sorted(candidates, key=lambda c: (-score(c), c[0], c[1]))
        picked = [c for c in scored[: self.max_sentences] if score(c) > 0] or scored[:1]
        picked.sort(key=lambda c: (c[0], c[1]))  # read in source order
        out = []
        for rank, _, text, _, n in picked:
            text = text if text[-1] in ".!?" else text + "."
            out.append(f"{text[:-1]} [{n}]{text[-1]}")
        return out
