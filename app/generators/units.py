"""What the extractive generator can quote: a source's text cut into units that read on their
own. A unit is a prose sentence (markup stripped, a PDF's wrapped lines and run-in headings
mended) or a table row read with its header and the table's caption ("Business plan service
credits — Monthly Uptime Percentage: Below 95.0% | Service credit: 50% of the monthly fee").
Headings, code and fragments too short to state anything are not units. Every word and number
of a unit is in the source's text, so the citation check can verify it lexically."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from app.sources import Source
from app.text import LIST_NUMBER, MARKERS, sentence_spans, terms

MAX_UNIT_CHARS = 600
MIN_WORDS = 4  # "Post-incident reports." or "Yes." states nothing on its own
_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")
_EMPHASIS = re.compile(r"\*\*|__|`")
_SEPARATOR_CELL = re.compile(r":?-{3,}:?")
# a cell that names its column ("Plan: Pro"): the loaders' table rows (ingest/loaders/tables.py)
_NAMED_CELL = re.compile(r"[^:]{1,80}: \S")
_LIST_START = re.compile(rf"{LIST_NUMBER.pattern}\s")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
ANAPHOR = re.compile(r"^(this|these|that|those|it|its|they|their|them|such|both|the same)\b",
                     re.IGNORECASE)
_ABBREVIATION = re.compile(r"(?:\b[A-Z][a-z]{0,3}|\be\.g|\bi\.e|\betc|\bvs)\.$")
# a run-in heading ("Incident records. Incident timelines are kept...") has no verb like these
_AUXILIARY = frozenset("is are was were be has have had can cannot must will do does did may "
                       "should shall".split())


@dataclass(frozen=True)
class Unit:
    n: int  # the source's [n]
    rank: int  # the source's position among the sources (0: the best)
    pos: int  # the unit's position in its source
    para: int  # the paragraph (or table) it belongs to in its source
    text: str  # what the answer quotes (without the marker)
    words: frozenset[str]  # the content terms of `scored`
    scored: str  # what is compared with the question: the text with its heading (and the
    # sentence before it, when it starts with "It", "This"...)
    row: bool = False  # a table row

    @property
    def says(self) -> frozenset[str]:
        """The content terms of the text itself."""
        return frozenset(terms(self.text))


def clean(raw: str) -> str:
    """Markup, emphasis and bracketed numbers removed; whitespace collapsed."""
    text = MARKERS.sub("", _EMPHASIS.sub("", _MARKUP.sub("", raw)))
    return " ".join(text.split())


def looks_like_heading(text: str) -> bool:
    """A title line (HTML and PDF headings carry no "#"): short and without a full stop."""
    return text[-1] not in ".!?:;)" and len(text.split()) < 10


def _is_row(raw: str) -> bool:
    line = raw.strip()
    return "\n" not in line and (line.startswith("|") or " | " in line)


def _cells(raw: str) -> list[str]:
    line = raw.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [clean(c) for c in line.split("|")]


def _mended(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sentences sentence_spans cut in two, joined back: a PDF's wrapped line that starts
    with a number ("after\\n4 hours" reads like a list item), and a sentence going on in
    lower case after an abbreviation's full stop."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out:
            ps, pe = out[-1]
            gap = text[pe:s]
            wrapped = (gap.count("\n") == 1 and text[s].isdigit() and not _is_row(text[ps:pe])
                       and not _LIST_START.match(text, s) and text[pe - 1] not in ".!?:;|")
            # "Orrery Lane Software Ltd. detects...": an abbreviation's full stop
            continued = ("\n" not in gap and text[s].islower()
                         and _ABBREVIATION.search(text, ps, pe) is not None)
            if wrapped or continued:
                out[-1] = (ps, e)
                continue
        out.append((s, e))
    return out


def _rows_apart(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """A span that holds table rows on lines of their own, cut at its line breaks: rows end in
    no full stop, so a sheet's rows read as one "sentence" otherwise."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if "\n" not in text[s:e] or " | " not in text[s:e]:
            out.append((s, e))
            continue
        start = s
        for line in text[s:e].split("\n"):
            end = start + len(line)
            if line.strip():
                out.append((start, end))
            start = end + 1
    return out


def _without_heading_line(text: str, s: int, e: int) -> int:
    """Where a sentence starts once a PDF heading fused to it is dropped ("Guests\\nGuests
    are people outside..."): a short first line without punctuation, at the start of a line,
    followed by a line that starts with a capital."""
    newline = text.find("\n", s, e)
    if newline < 0 or (s > 0 and text[s - 1] != "\n"):
        return s
    first, rest = text[s:newline].strip(), text[newline + 1:e].lstrip()
    if first and rest[:1].isupper() and len(first.split()) <= 7 and first[-1] not in ".!?:;,":
        return newline + 1
    return s


def source_units(source: Source, rank: int) -> list[Unit]:
    """The source's units in reading order."""
    units = _units(source.text, source.heading, source.start > 0)
    return [replace(u, n=source.n, rank=rank) for u in units]


@lru_cache(maxsize=1024)  # ~22 KB per passage: ~25 MB at most
def _units(text: str, heading: tuple[str, ...], mid_document: bool) -> tuple[Unit, ...]:
    """A passage's units (with n and rank 0): cached, as the same passages come back in
    answer after answer and reading them was an eighth of the time an /ask holds the GIL."""
    return tuple(_Reader(text, heading, mid_document).units())


class _Reader:
    """One pass over a source's spans, keeping the table and the heading it is in.
    `mid_document`: the passage does not start at its document's start."""

    def __init__(self, text: str, heading: tuple[str, ...], mid_document: bool) -> None:
        self.text, self.mid_document = text, mid_document
        self.out: list[Unit] = []
        self.para = 0
        # the heading the text is under (the chunk's own, until the passage shows one); a
        # table row quotes it only when the passage has it (the citation check reads the passage)
        self.caption = heading[-1] if heading else ""
        self.quotable = self.caption in self.text
        self.header: list[str] | None = None  # the current table's header cells

    def units(self) -> list[Unit]:
        last: list[str] | None = None  # the previous span's cells, if it was a table row
        prev_end = 0
        spans = _rows_apart(self.text, _mended(self.text, sentence_spans(self.text)))
        for pos, (s, e) in enumerate(spans):
            raw = self.text[s:e]
            cells = _cells(raw) if _is_row(raw) else None
            if pos and ((cells is None) != (last is None)
                        or (cells is None and _BLANK_LINE.search(self.text, prev_end, s))):
                self.para += 1  # a new paragraph, or a table starts or ends
            if cells is not None:
                self._row(pos, raw, cells, last)
            else:
                self._prose(pos, s, e)
            prev_end, last = e, cells
        return self.out

    def _add(self, pos: int, text: str, scored: str, row: bool = False,
             context: str = "") -> None:
        words = terms(context + scored)
        self.out.append(Unit(0, 0, pos, self.para, text,
                             frozenset(words), context + scored, row))

    def _row(self, pos: int, raw: str, cells: list[str], previous: list[str] | None) -> None:
        if all(_SEPARATOR_CELL.fullmatch(c) for c in cells if c):
            self.header = previous  # markdown: the row above was the header
            self.out = [u for u in self.out if not (u.row and u.pos == pos - 1)]
            return
        if all(_NAMED_CELL.match(c) for c in cells if c):
            self.header = None  # a row that names its own cells: it needs no header row
        elif previous is None:  # the table's first row in this passage
            self.header = None
            if not raw.lstrip().startswith("|") and not any(ch.isdigit() for ch in raw):
                self.header = cells  # an HTML table's first row, without numbers: its header
                return
        row = _row_text(self.caption if self.quotable else "", self.header, cells)
        if len(row.split()) >= 2 and len(row) <= MAX_UNIT_CHARS:
            hidden = f"{self.caption}: " if self.caption and not self.quotable else ""
            self._add(pos, row, row, row=True, context=hidden)

    def _prose(self, pos: int, s: int, e: int) -> None:
        text, raw = self.text, self.text[s:e]
        cleaned = clean(raw)
        if not cleaned or "```" in raw or "~~~" in raw:
            return  # code, not prose
        if raw.lstrip().startswith("#") or looks_like_heading(cleaned):
            self.caption, self.quotable = cleaned, True
            return
        start = _without_heading_line(text, s, e)
        if start > s:
            self.caption, self.quotable = clean(text[s:start]), True
        unit = clean(text[start:e])
        if _run_in_heading(text, s, e, unit):
            self.caption, self.quotable = unit.rstrip("."), True
            return
        if s == 0 and self.mid_document and unit[0].islower():
            unit = "… " + unit  # the passage starts in the middle of a sentence
        if len(unit.split()) < MIN_WORDS or len(unit) > MAX_UNIT_CHARS:
            return
        # scored with the heading it is under, and with the sentence "It" or "This" refers to
        lead = self.out[-1] if self.out else None
        refers_back = (ANAPHOR.match(unit) and lead is not None and not lead.row
                       and lead.pos == pos - 1 and lead.para == self.para)
        context = f"{self.caption}: " if self.caption else ""
        self._add(pos, unit, (f"{lead.text} " if refers_back else "") + unit, context=context)


def _run_in_heading(text: str, s: int, e: int, unit_text: str) -> bool:
    """A paragraph's first "sentence" that is a title run into the text after it on the same
    line ("Personal data breach notification. When Orrery Lane confirms..."): a few words,
    no number, no auxiliary verb."""
    line_start = s == 0 or text[s - 1] == "\n"
    runs_on = e < len(text) and text[e] != "\n" and text.find("\n", e, e + 2) < 0
    words = unit_text.rstrip(".").split()
    return (line_start and runs_on and len(words) <= 5 and not any(ch.isdigit() for ch in unit_text)
            and not _AUXILIARY & {w.lower() for w in words})


def _row_text(caption: str, header: list[str] | None, cells: list[str]) -> str:
    """"Caption — Header: cell | Header: cell" (empty cells left out)."""
    if header and len(header) == len(cells):
        body = " | ".join(f"{h}: {c}" if h and h != c else c
                          for h, c in zip(header, cells) if c)
    else:
        body = " | ".join(c for c in cells if c)
    return f"{caption} — {body}" if caption and body else body
