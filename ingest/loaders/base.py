"""The types every loader returns: the extracted text and the sections that cover it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """A span of `LoadedDocument.text` under one heading path, on one page."""

    start: int
    end: int
    heading: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True)
class LoadedDocument:
    text: str
    sections: tuple[Section, ...]
    kind: str  # "markdown" | "text" | "html" | "pdf"
