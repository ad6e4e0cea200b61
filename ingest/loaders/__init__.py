"""Loaders turn a file's bytes into extracted text plus the structure chunks point back to.

`load(path, data)` picks the loader by file extension. Every loader returns a `LoadedDocument`
whose `sections` cover its `text` in order; each section carries the heading path (Markdown,
HTML) or the page number (PDF) of the text it spans. A file that cannot be used raises
`LoadError` with a one-line reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath


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


# The format loaders import Section and LoadedDocument from here, so they come after them.
from collections.abc import Callable  # noqa: E402

from ingest.errors import LoadError  # noqa: E402
from ingest.loaders.common import one_line, short_exc  # noqa: E402
from ingest.loaders.html import load_html  # noqa: E402
from ingest.loaders.markdown import load_markdown  # noqa: E402
from ingest.loaders.pdf import load_pdf  # noqa: E402
from ingest.loaders.text import load_text  # noqa: E402

_LOADERS: dict[str, Callable[[bytes], LoadedDocument]] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".text": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_LOADERS)


def load(path: PurePath, data: bytes) -> LoadedDocument:
    """Extract a file's text and sections; the loader is chosen by the (case-insensitive) suffix.

    `path` only picks the loader (the file is not read). Raises LoadError with a one-line
    reason for an unsupported type or a file that cannot be used; a parser crash becomes a
    LoadError too.
    """
    suffix = PurePath(path).suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        what = f"unsupported file type '{suffix}'" if suffix else "file has no extension"
        raise LoadError(f"{what} (supported: {supported})")
    if not data:
        raise LoadError("empty file")
    try:
        return loader(bytes(data))
    except LoadError as exc:
        reason = one_line(str(exc), 120)
        if reason == str(exc):
            raise
        raise LoadError(reason) from exc
    except Exception as exc:  # a parser bug or an input it cannot cope with
        detail = f"{type(exc).__name__}: {short_exc(exc, 60)}"
        raise LoadError(f"could not read the file ({detail})") from exc
