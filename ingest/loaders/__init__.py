"""Loaders turn a file's bytes into extracted text plus the structure chunks point back to.

`load(path, data)` picks the loader by file extension. Every loader returns a `LoadedDocument`
whose `sections` cover its `text` in order; each section carries the heading path (Markdown,
HTML) or the page number (PDF) of the text it spans. A file that cannot be used raises
`LoadError` with a one-line reason.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from ingest.errors import LoadError
from ingest.loaders.base import LoadedDocument, Section
from ingest.loaders.common import one_line, short_exc
from ingest.loaders.html import load_html
from ingest.loaders.markdown import load_markdown
from ingest.loaders.pdf import load_pdf
from ingest.loaders.text import load_text

__all__ = ["LoadedDocument", "Section", "SUPPORTED_EXTENSIONS", "check_supported", "load"]

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


def check_supported(path: PurePath) -> Callable[[bytes], LoadedDocument]:
    """The loader for `path`'s (case-insensitive) suffix; LoadError if there is none."""
    suffix = PurePath(path).suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        what = f"unsupported file type '{suffix}'" if suffix else "file has no extension"
        raise LoadError(f"{what} (supported: {supported})")
    return loader


def load(path: PurePath, data: bytes) -> LoadedDocument:
    """Extract a file's text and sections; the loader is chosen by the (case-insensitive) suffix.

    `path` only picks the loader (the file is not read). Raises LoadError with a one-line
    reason for an unsupported type or a file that cannot be used; a parser crash becomes a
    LoadError too.
    """
    loader = check_supported(path)
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
