"""HTML: the readable text of a page as blocks separated by blank lines, cut at h1-h6."""
from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

from ingest.errors import LoadError
from ingest.loaders.base import LoadedDocument
from ingest.loaders.common import HeadingStack, build_sections
from ingest.loaders.decode import bom_encoding, decode_text

# Elements whose whole content is boilerplate or not text.
DROPPED = frozenset(
    "script style noscript template svg nav header footer aside form button iframe head title"
    " select textarea canvas object".split()
)
HEADINGS = {f"h{n}": n for n in range(1, 7)}
BLOCKS = frozenset(
    "address article blockquote body caption dd details dialog div dl dt fieldset figcaption"
    " figure hr html legend li main ol p pre section summary table tbody tfoot thead tr ul"
    .split()
) | HEADINGS.keys()
VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
# Table cells are not blocks: a row's cells share one block, separated by " | ".
# An open element (key) that the start of another (value) closes implicitly.
_IMPLIED_END: dict[str, frozenset[str]] = {
    "p": BLOCKS | {"td", "th"},
    "li": frozenset({"li"}),
    "dt": frozenset({"dt", "dd"}),
    "dd": frozenset({"dt", "dd"}),
    "tr": frozenset({"tr"}),
    "td": frozenset({"td", "th", "tr"}),
    "th": frozenset({"td", "th", "tr"}),
    **{heading: frozenset(HEADINGS) for heading in HEADINGS},
}
# Only these are tracked as open elements; inline ones (a, b, span...) never change the state.
_TRACKED = BLOCKS | DROPPED | {"td", "th"}
_MAX_DEPTH = 512  # deeper elements are treated as inline (keeps absurd nesting linear)
# What may stand in <head>; anything else closes it (for pages without a <body> tag).
_HEAD_CONTENT = frozenset("title meta link style script base noscript template".split())
_BR = "\x00"  # stands for <br> until whitespace is collapsed
_WHITESPACE = re.compile(r"[^\S\x00]+")
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)


class _TextExtractor(HTMLParser):
    """Collects (text, heading level or None) blocks from the readable parts of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, int | None]] = []
        self._open: list[str] = []
        self._buffer: list[str] = []
        self._prefix = ""  # "- " or "3. " waiting for a list item's first text
        self._lists: list[list[int]] = []  # per open ul/ol: [item counter, 0 for ul / 1 for ol]
        self._cells = 0
        self._skipping = False
        self._heading: int | None = None
        self._pre = False

    def _update(self) -> None:
        """Recompute the state that depends on the open elements."""
        self._skipping, self._heading, self._pre = False, None, False
        soft = False  # inside a <header> of an <article>/<main>: only its headings are kept
        in_content = False
        for tag in self._open:
            if tag in ("article", "main"):
                in_content = True
            elif tag == "header" and in_content:
                soft = True
            elif tag in DROPPED:
                self._skipping = True
                return
            elif tag in HEADINGS:
                self._heading = HEADINGS[tag]
            elif tag == "pre":
                self._pre = True
        self._skipping = soft and self._heading is None

    def _flush(self) -> None:
        raw = "".join(self._buffer)
        self._buffer = []
        if self._pre:
            text = raw.replace(_BR, "\n").strip("\n").rstrip()
        else:
            lines = (line.strip() for line in _WHITESPACE.sub(" ", raw).split(_BR))
            text = "\n".join(line for line in lines if line)
        if not text:
            return
        if self._heading is None and not self._pre and self._prefix:
            text, self._prefix = self._prefix + text, ""
        self.blocks.append((text, self._heading))

    def _close(self, tag: str) -> None:
        index = len(self._open) - 1 - self._open[::-1].index(tag)
        for closed in self._open[index:]:
            if closed in ("ul", "ol") and self._lists:
                self._lists.pop()
            elif closed == "li":
                self._prefix = ""
        del self._open[index:]
        self._update()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._buffer.append("\n" if self._pre else _BR)
            return
        if tag not in _HEAD_CONTENT and "head" in self._open:
            self._close("head")
        while self._open and tag in _IMPLIED_END.get(self._open[-1], ()):
            self._flush()
            self._close(self._open[-1])
        if tag in BLOCKS and self._heading is None:
            self._flush()
        if tag in VOID or tag not in _TRACKED or len(self._open) >= _MAX_DEPTH:
            return
        self._open.append(tag)
        self._update()
        if tag in ("ul", "ol"):
            self._lists.append([0, int(tag == "ol")])
        elif tag == "li":
            counter = self._lists[-1] if self._lists else [0, 0]
            counter[0] += 1
            self._prefix = f"{counter[0]}. " if counter[1] else "- "
        elif tag == "tr":
            self._cells = 0
        elif tag in ("td", "th"):
            if self._cells and not self._skipping:
                self._buffer.append(" | ")
            self._cells += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and tag in self._open:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self._open:
            return  # a stray end tag
        closed = self._open[len(self._open) - 1 - self._open[::-1].index(tag):]
        if any(t in HEADINGS for t in closed) or (tag in BLOCKS and self._heading is None):
            self._flush()
        self._close(tag)

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._buffer.append(data.replace(_BR, ""))

    def close(self) -> None:
        super().close()
        self._flush()


def declared_charset(data: bytes) -> str | None:
    """The Python codec a page's <meta charset> or http-equiv Content-Type declares, if usable."""
    match = _META_CHARSET.search(data[:4096])
    if match is None:
        return None
    try:
        name = codecs.lookup(match.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None
    if name.startswith(("utf-16", "utf-32")):
        return None  # a declaration cannot name these (HTML spec); the BOM decides
    if name in ("ascii", "iso8859-1"):
        return "cp1252"  # what browsers use for these labels
    return name


def html_to_blocks(html: str) -> list[tuple[str, int | None]]:
    """The readable blocks of a page as (text, heading level or None)."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return parser.blocks


def load_html(data: bytes) -> LoadedDocument:
    """Load an HTML page: boilerplate dropped, one block per paragraph, sections from h1-h6."""
    declared = None if bom_encoding(data) else declared_charset(data)
    blocks = html_to_blocks(decode_text(data, declared))
    if not blocks:
        raise LoadError("HTML page has no text content")
    stack = HeadingStack()
    marks: list[tuple[int, tuple[str, ...], int | None]] = [(0, (), None)]
    parts: list[str] = []
    offset = 0
    for text, level in blocks:
        if level is not None:
            marks.append((offset, stack.push(level, text), None))
        parts.append(text)
        offset += len(text) + 2
    text = "\n\n".join(parts)
    return LoadedDocument(text=text, sections=build_sections(text, marks), kind="html")
