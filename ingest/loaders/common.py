"""Helpers the format loaders share: newline normalisation, section building, one-line reasons."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ingest.errors import LoadError
from ingest.loaders.base import Section

_MAX_REASON = 100
_NEWLINES = re.compile(r"\r\n?")


def normalize_newlines(text: str) -> str:
    """Turn CRLF and lone CR into LF."""
    return _NEWLINES.sub("\n", text)


def one_line(text: str, limit: int = _MAX_REASON) -> str:
    """Collapse `text` to one line of at most `limit` characters (for LoadError reasons)."""
    line = " ".join(text.split())
    if len(line) > limit:
        line = line[: limit - 3].rstrip() + "..."
    return line


def short_exc(exc: BaseException, limit: int = 80) -> str:
    """A short one-line description of an exception: its message, else its class name."""
    return one_line(str(exc), limit) or type(exc).__name__


class HeadingStack:
    """The heading path so far: a heading of level n replaces every open heading of level >= n."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []

    def push(self, level: int, title: str) -> tuple[str, ...]:
        """Open a heading and return the new path."""
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, title))
        return self.path

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._open)


def page_by_page(count: int, read: Callable[[int], str]) -> list[str]:
    """read(0), ..., read(count - 1), the PDF readers' one loop: a PDF with no pages, or a page
    whose read raises, is refused with the page's number (never skipped)."""
    if count == 0:
        raise LoadError("PDF has no pages")
    texts: list[str] = []
    for index in range(count):
        try:
            texts.append(read(index))
        except Exception as exc:
            raise LoadError(f"page {index + 1} could not be read: {short_exc(exc, 60)}") from exc
    return texts


def build_sections(
    text: str, marks: Iterable[tuple[int, tuple[str, ...], int | None]]
) -> tuple[Section, ...]:
    """Cut `text` at the mark offsets into sections, trimmed of surrounding whitespace.

    Each mark is (start offset, heading path, page); a section runs to the next mark (or the
    end of the text). Whitespace-only spans are dropped, so every section holds some text and
    together they still cover every non-whitespace character.
    """
    ordered = sorted(marks, key=lambda mark: mark[0])
    sections: list[Section] = []
    for i, (start, heading, page) in enumerate(ordered):
        end = ordered[i + 1][0] if i + 1 < len(ordered) else len(text)
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            sections.append(Section(start=start, end=end, heading=heading, page=page))
    return tuple(sections)
