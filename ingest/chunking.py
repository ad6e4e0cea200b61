"""Token-aware chunking: structure first (sections, paragraphs, sentences, lines, words),
characters last, with sizes counted in the embedding model's own tokenizer.

Invariants (tested): every chunk has at most `max_tokens` tokens and `max_chars` characters,
`doc.text[chunk.start:chunk.end] == chunk.text`, chunks never cross a section (so each has one
heading path and one page), every non-whitespace character lands in some chunk, and consecutive
chunks of a section share at most `overlap` tokens.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from ingest.text import strip_spans

if TYPE_CHECKING:  # annotations only: settings import this module's rule, not the loaders
    from ingest.loaders import LoadedDocument, Section

CountTokens = Callable[[Sequence[str]], list[int]]

# Split points, coarsest first. A span that is too big is split at every match of its level.
_LEVELS = (
    re.compile(r"\n[ \t]*\n\s*"),          # paragraphs
    re.compile(r"(?<=[.!?;:])\s+"),        # sentences (and clauses); before lines, because
    re.compile(r"\n\s*"),                  # lines are often just wrapping (PDF, hard-wrapped
    re.compile(r"\s+"),                    # Markdown); then words
)
_SENTENCE_START = re.compile(r"(?:^|(?<=[.!?]))\s+(?=\S)")
_WORD = re.compile(r"\S+")


def check_overlap(overlap: int, size: int) -> None:
    """The rule for chunk overlap, wherever it is checked: at least 0 and under half the chunk
    size, so a chunk is never swallowed by the next one. Raises ValueError saying so."""
    if not 0 <= overlap < size // 2:
        raise ValueError(f"the chunk overlap ({overlap} tokens) must be at least 0 and under "
                         f"half the chunk size ({size} tokens)")


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    start: int
    end: int
    text: str
    heading: tuple[str, ...]
    page: int | None
    tokens: int


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int


class Chunker:
    def __init__(self, count_tokens: CountTokens, max_tokens: int, overlap: int,
                 max_chars: int | None = None) -> None:
        if max_tokens < 8:
            raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
        check_overlap(overlap, max_tokens)
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.overlap = overlap
        # Guards against one token that covers a huge run (a word piece tokenizer maps a
        # 400,000-character "word" to a single [UNK]): a chunk must stay readable as a citation.
        self.max_chars = max_chars or max_tokens * 10

    def split(self, doc: LoadedDocument) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in doc.sections:
            budget = self.max_tokens
            while True:
                spans = self._pack(doc.text, section, budget)
                counts = self.count_tokens([doc.text[s:e] for s, e in spans])
                if all(n <= self.max_tokens for n in counts):
                    break
                budget = max(4, int(budget * 0.9))  # token counts are not additive: tighten
            for (s, e), n in zip(spans, counts):
                chunks.append(Chunk(len(chunks), s, e, doc.text[s:e], section.heading,
                                    section.page, n))
        return chunks

    # -- units: pieces that each fit the budget, found coarse-to-fine ------------------------

    def _units(self, text: str, start: int, end: int, budget: int) -> list[_Unit]:
        done: list[_Unit] = []
        pending = strip_spans(text, [(start, end)])
        for level in (*_LEVELS, None):
            if not pending:
                break
            counts = self.count_tokens([text[s:e] for s, e in pending])
            too_big = []
            for (s, e), n in zip(pending, counts):
                if n <= budget and e - s <= self.max_chars:
                    done.append(_Unit(s, e, n))
                elif level is None:
                    done.extend(self._hard_split(text, s, e, budget))
                else:
                    too_big.extend(_split_at(text, s, e, level))
            pending = too_big
        done.sort(key=lambda u: u.start)
        return done

    def _hard_split(self, text: str, start: int, end: int, budget: int) -> list[_Unit]:
        """Last resort for a run without separators: fixed character windows, halved until
        each fits."""
        width = min(self.max_chars, max(1, budget))
        out: list[_Unit] = []
        pending = [(s, min(s + width, end)) for s in range(start, end, width)]
        while pending:
            counts = self.count_tokens([text[s:e] for s, e in pending])
            retry = []
            for (s, e), n in zip(pending, counts):
                if n <= budget or e - s == 1:
                    out.append(_Unit(s, e, n))
                else:
                    mid = (s + e) // 2
                    retry += [(s, mid), (mid, e)]
            pending = retry
        return out

    # -- packing units into chunks, with overlap -------------------------------------------

    def _pack(self, text: str, section: Section, budget: int) -> list[tuple[int, int]]:
        units = self._units(text, section.start, section.end, budget)
        spans: list[tuple[int, int]] = []
        cur_start = cur_end = -1
        cur_tokens = 0
        for unit in units:
            fits = (cur_tokens + unit.tokens <= budget
                    and unit.end - cur_start <= self.max_chars)
            if cur_start >= 0 and fits:
                cur_end, cur_tokens = unit.end, cur_tokens + unit.tokens
                continue
            if cur_start >= 0:
                spans.append((cur_start, cur_end))
                room = min(self.overlap, budget - unit.tokens)
                ov_start, ov_tokens = self._overlap_start(text, cur_start, cur_end, room)
                if ov_tokens == 0 or unit.end - ov_start > self.max_chars:
                    ov_start, ov_tokens = unit.start, 0
                cur_start, cur_tokens = ov_start, ov_tokens + unit.tokens
            else:
                cur_start, cur_tokens = unit.start, unit.tokens
            cur_end = unit.end
        if cur_start >= 0:
            spans.append((cur_start, cur_end))
        return spans

    def _overlap_start(self, text: str, start: int, end: int, room: int) -> tuple[int, int]:
        """Where the next chunk starts inside the previous one: the longest tail of at most
        `room` tokens that begins at a word, preferring a sentence start. (end, 0) if none."""
        if room <= 0:
            return end, 0
        # Never the first word: a chunk must not be swallowed whole by the next one.
        words = [m.span() for m in _WORD.finditer(text, start, end) if m.start() > start][-room:]
        counts = self.count_tokens([text[s:e] for s, e in words])
        best, best_tokens, total = end, 0, 0
        for (s, _), n in zip(reversed(words), reversed(counts)):
            total += n
            if total > room:
                break
            best, best_tokens = s, total
        if best == end:
            return end, 0
        # Prefer a sentence start when it keeps at least half of what the word cut would.
        sentence_starts = {m.end() for m in _SENTENCE_START.finditer(text, start, end)}
        tail = 0
        for (s, _), n in zip(reversed(words), reversed(counts)):
            tail += n
            if s < best:
                break
            if s in sentence_starts and tail * 2 >= best_tokens:
                return s, tail
        return best, best_tokens


def _split_at(text: str, start: int, end: int, sep: re.Pattern[str]) -> list[tuple[int, int]]:
    pieces, pos = [], start
    for m in sep.finditer(text, start, end):
        pieces.append((pos, m.start()))
        pos = m.end()
    pieces.append((pos, end))
    if len(pieces) == 1:  # no split point at this level: hand the span on to the next level
        return [(start, end)]
    return strip_spans(text, pieces)
