"""The model-free generator: the answer is made of the sources' own units (sentences, and table
rows read with their header, see app.generators.units) that best answer the question, each
followed by its source's [n] marker. Deterministic; no language model.

Units are scored by the question's content terms they contain (weighted by how rare each term
is among the candidates, a bonus for a number when the question asks "how long / many / much",
the source's rank breaking ties). With an embedder (`embed`: the service's, already loaded),
the SHORTLIST lexically best are also scored by their cosine similarity to the question (the
first EMBED_CHARS characters of the unit read with its heading), which finds a fact phrased
without the question's words; their vectors are kept in an LRU cache keyed by the text, so a
passage asked about again costs no embedding. The answer keeps the best unit and those close to it (KEEP_SAME_DOCUMENT of its
score from its own document, KEEP_OTHER_DOCUMENT from another), each with the neighbouring
sentence it needs to be understood (the one "This", "It" or "They" refers to, or the next one
when it holds the number asked for), at most `max_sentences` units in all, in reading order.
The constants were chosen on the starter set's dev split (README, "Evaluation")."""
from __future__ import annotations

import logging
import math
import re
import threading
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

from app.conversation import Turn, retrieval_query
from app.generators import TextStream
from app.generators.units import ANAPHOR, MAX_UNIT_CHARS, Unit, source_units
from app.sources import Source
from app.text import MARKERS, sentence_spans, terms

Embed = Callable[[list[str]], np.ndarray]  # texts -> L2-normalised float32 rows

MAX_SENTENCES = 4
SHORTLIST = 8  # units embedded per answer (the lexically best ones)
SEMANTIC_WEIGHT = 0.5  # cosine similarity's share of the score (the lexical score's: 1 - it)
# A unit after the best must score this share of the best's score: less from the best's own
# document (it goes on answering), more from another one (a second opinion must be as good).
KEEP_SAME_DOCUMENT = 0.6
KEEP_OTHER_DOCUMENT = 0.9
RANK_PENALTY = 0.01  # per rank of the unit's source
EMBED_CHARS = 150  # of the unit (with its heading) embedded: the gist, at a bounded cost
CACHE_SIZE = 4096  # unit vectors kept (384 float32 each: ~6 MB)
DUPLICATE = 0.7  # term overlap (Jaccard) above which a unit repeats one already chosen
_ASKS_QUANTITY = re.compile(r"\b(how (long|many|much|often|soon|quickly|fast|big|large|old|far)|"
                            r"when|values?|what (percentage|price|date|time|limit|fee|rate|size|"
                            r"year|day))\b", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
# a unit's term weight is divided by (its number of terms) ** LENGTH_EXPONENT: long sentences
# lose a little, not as much as with a square root (they hold the facts as often as short ones)
LENGTH_EXPONENT = 0.2
# a sentence about the document itself ("This guide explains how re-rankers work") answers nothing
_META = re.compile(r"^(this|the|these) (guide|document|page|article|section|policy|chapter|"
                   r"paper|notes?|checklist)\b", re.IGNORECASE)
log = logging.getLogger("ragfirst.generators")


class VectorCache:
    """Text -> vector, least recently used dropped first; safe across request threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def vectors(self, texts: list[str], embed: Embed) -> np.ndarray:
        """The texts' vectors, embedding (in one call) only those not cached."""
        with self._lock:
            found = {t: self._vectors[t] for t in texts if t in self._vectors}
            for t in found:
                self._vectors.move_to_end(t)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            fresh = np.asarray(embed(missing), dtype=np.float32)
            found.update(zip(missing, fresh))
            with self._lock:
                self._vectors.update(zip(missing, fresh))
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return np.stack([found[t] for t in texts])


class ExtractiveGenerator:
    name = "extractive"
    model = None

    def __init__(self, max_sentences: int = MAX_SENTENCES, embed: Embed | None = None, *,
                 shortlist: int = SHORTLIST, semantic_weight: float = SEMANTIC_WEIGHT,
                 cache_size: int = CACHE_SIZE) -> None:
        if max_sentences < 1 or shortlist < 1 or cache_size < 0:
            raise ValueError("max_sentences and shortlist must be >= 1, cache_size >= 0")
        if not 0.0 <= semantic_weight <= 1.0:
            raise ValueError(f"semantic_weight must be in [0, 1], got {semantic_weight}")
        self.max_sentences = max_sentences
        self.shortlist = shortlist
        self.semantic_weight = semantic_weight
        self._embed = embed
        self._cache = VectorCache(cache_size)

    def warm_up(self) -> None:
        return None  # no model of its own: the embedder is the service's, warmed up there

    def close(self) -> None:
        return None

    def generate(self, question: str, sources: Sequence[Source],
                 deadline: float | None = None, history: Sequence[Turn] = ()) -> str:
        return "".join(self.stream(question, sources, deadline, history))

    def stream(self, question: str, sources: Sequence[Source],
               deadline: float | None = None, history: Sequence[Turn] = ()) -> TextStream:
        # No model: no deadline to keep. A follow-up's sentences are chosen for its standalone
        # form, which is the same question with its subject ("And for monthly plans?" asks
        # about refunds): on the labelled follow-ups, key-fact recall dev 0.375 -> 0.500,
        # test 0.471 -> 0.618. Those that hold the follow-up's new words come first: the answer
        # opens with what was asked (monthly plans), then the context (annual ones).
        query = retrieval_query(question, history)
        picked = self.select(query, sources)
        if query != question:
            said = {t for turn in history if turn.role == "user" for t in terms(turn.content)}
            new = set(terms(question)) - said or set(terms(question))
            picked.sort(key=lambda sentence: not new & set(terms(sentence)))
        for i, sentence in enumerate(picked):
            yield ("" if i == 0 else " ") + sentence

    def select(self, question: str, sources: Sequence[Source]) -> list[str]:
        """The answer's sentences, each ending with its source's marker."""
        units = [u for rank, s in enumerate(sources) for u in source_units(s, rank)]
        # "Its main facts are these:" says nothing without what follows
        units = [u for i, u in enumerate(units) if not u.text.endswith(":") or (
            i + 1 < len(units) and units[i + 1].n == u.n and units[i + 1].pos == u.pos + 1)]
        if not units:  # only headings or code: quote the best passage's start
            best = sources[0] if sources else None
            if best is None or not best.text.strip():
                return []
            first = " ".join(MARKERS.sub("", best.text).split())[:MAX_UNIT_CHARS]
            return [_cited(first, best.n)]
        scores = self._scores(question, units)
        paths = {s.n: s.path for s in sources}
        chosen = self._choose(question, units, scores, paths)
        chosen.sort(key=lambda u: (u.rank, u.pos))  # read in source order
        return [_cited(u.text, u.n) for u in chosen]

    def _scores(self, question: str, units: list[Unit]) -> dict[int, float]:
        """Unit index -> score, for the units that may be chosen (the shortlist, with an
        embedder; every unit without)."""
        lexical = lexical_scores(question, units)
        top = max(lexical)
        norm = [x / top if top > 0 else 0.0 for x in lexical]
        order = sorted(range(len(units)),
                       key=lambda i: (-lexical[i], units[i].rank, units[i].pos))
        similarity = self._similarities(question, [units[i] for i in order[:self.shortlist]])
        if similarity is None:
            scores = {i: norm[i] for i in order}
        else:
            w = self.semantic_weight
            scores = {i: (1 - w) * norm[i] + w * sim for i, sim in zip(order, similarity)}
        return {i: x - RANK_PENALTY * units[i].rank for i, x in scores.items()}

    def _similarities(self, question: str, units: list[Unit]) -> list[float] | None:
        """Each unit's cosine similarity to the question (None without an embedder, or when
        it fails: the lexical scores stand alone)."""
        if self._embed is None or self.semantic_weight == 0.0:
            return None
        try:
            vecs = self._cache.vectors([question, *(u.scored[:EMBED_CHARS] for u in units)],
                                       self._embed)
        except Exception as exc:  # an answer from the words alone beats no answer
            log.warning("extractive: embedding failed (%s); scoring by words alone", exc)
            return None
        return [float(x) for x in vecs[1:] @ vecs[0]]

    def _choose(self, question: str, units: list[Unit], scores: dict[int, float],
                paths: dict[int, str]) -> list[Unit]:
        """The best unit, then those close to it, each with the neighbour it needs."""
        ranked = sorted(scores, key=lambda i: (-scores[i], units[i].rank, units[i].pos))
        best = scores[ranked[0]]
        chosen: list[Unit] = []
        for i in ranked:
            unit = units[i]
            if chosen:
                same = paths[unit.n] == paths[chosen[0].n]
                if best <= 0 or scores[i] < best * (KEEP_SAME_DOCUMENT if same
                                                    else KEEP_OTHER_DOCUMENT):
                    continue
            if unit in chosen or any(_repeats(unit, c) for c in chosen):
                continue
            group = [u for u in _with_neighbours(question, units, i, first=not chosen)
                     if u not in chosen]
            if chosen and len(chosen) + len(group) > self.max_sentences:
                continue
            chosen += group[: self.max_sentences]
            if len(chosen) >= self.max_sentences:
                break
        return chosen


def lexical_scores(question: str, units: list[Unit]) -> list[float]:
    """Each unit's weighted share of the question's content terms (0: none of them)."""
    wanted = set(terms(question))
    df = {t: sum(1 for u in units if t in u.words) for t in wanted}
    idf = {t: math.log(1 + len(units) / df[t]) for t in wanted if df[t]}
    # "How long / many / much / when ..." asks for a quantity: prefer units stating one.
    quantity = 0.5 * max(idf.values(), default=0.0) if _ASKS_QUANTITY.search(question) else 0
    out = []
    for u in units:
        hit = sum(idf.get(t, 0.0) for t in wanted & u.words)
        if hit and quantity and _DIGIT.search(u.text):
            hit += quantity
        out.append(hit / max(len(u.words), 1) ** LENGTH_EXPONENT)
    return out


def _repeats(unit: Unit, other: Unit) -> bool:
    """The same statement again (an overlapping chunk, or a second document saying it)."""
    if unit.text == other.text:
        return True
    a, b = unit.says, other.says
    return bool(a | b) and len(a & b) / len(a | b) >= DUPLICATE


def _with_neighbours(question: str, units: list[Unit], i: int, first: bool) -> list[Unit]:
    """The unit with the sentence before it when it refers back ("This", "They"...), and
    the one after it when the question asks for a number that only the next one states, when
    it announces what follows (":"), or, for the best unit, when the next one goes on about
    it ("It protects...")."""
    unit = units[i]
    if unit.row:
        return [unit]
    before, after = _adjacent(units, i, -1), _adjacent(units, i, +1)
    group = [before, unit] if before is not None and ANAPHOR.match(unit.text) else [unit]
    if after is not None and _needs_next(question, unit, after, first):
        group.append(after)
        then = _adjacent(units, i + 1, +1)
        if then is not None and after.text.endswith(":"):
            group.append(then)  # "Its main facts are these:" and the first of them
    return group


def _adjacent(units: list[Unit], i: int, step: int) -> Unit | None:
    """The prose sentence right before (step -1) or after (+1) units[i] in its source, in
    the same paragraph (or the list that a sentence ending with ":" announces)."""
    j = i + step
    if not 0 <= j < len(units):
        return None
    unit, other = units[i], units[j]
    same_para = other.para == unit.para or (step > 0 and unit.text.endswith(":"))
    if other.n != unit.n or other.row or other.pos != unit.pos + step or not same_para:
        return None
    return other


def _needs_next(question: str, unit: Unit, after: Unit, first: bool) -> bool:
    if unit.text.endswith(":"):
        return True
    if first and ANAPHOR.match(after.text) and not _META.match(after.text):
        return True
    return bool(_ASKS_QUANTITY.search(question) and not _DIGIT.search(unit.text)
                and _DIGIT.search(after.text))


def _cited(text: str, n: int) -> str:
    """The text with [n] before the full stop of each of its sentences (the citation check
    splits the answer into sentences and wants each one cited)."""
    pieces = []
    for s, e in sentence_spans(text):
        piece = text[s:e]
        piece = piece if piece[-1] in ".!?:" else piece + "."
        pieces.append(f"{piece[:-1]} [{n}]{piece[-1]}")
    return " ".join(pieces)
