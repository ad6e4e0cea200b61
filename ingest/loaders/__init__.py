"""Loaders turn a file's bytes into extracted text plus the structure chunks point back to.

`load(path, data)` picks the loader by file extension. Every loader returns a `LoadedDocument`
whose `sections` cover its `text` in order; each section carries the heading path (Markdown,
HTML) or the page number (PDF) of the text it spans. A file that cannot be used raises
`LoadError` with a one-line reason. `LoadOptions` (from the settings) carries the limits
and switches some loaders read; the others ignore it.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from ingest.errors import LoadError
from ingest.loaders.base import LoadedDocument, LoadOptions, Section
from ingest.loaders.common import one_line, short_exc
from ingest.loaders.delimited import load_delimited, load_tsv
from ingest.loaders.docx import load_docx
from ingest.loaders.epub import load_epub
from ingest.loaders.html import load_html
from ingest.loaders.markdown import load_markdown
from ingest.loaders.pdf import load_pdf
from ingest.loaders.pptx import load_pptx
from ingest.loaders.text import load_text
from ingest.loaders.xlsx import load_xlsx

__all__ = ["LoadedDocument", "LoadOptions", "Section", "SUPPORTED_EXTENSIONS",
           "check_supported", "load"]

Loader = Callable[[bytes, LoadOptions], LoadedDocument]


def _plain(loader: Callable[[bytes], LoadedDocument]) -> Loader:
    """A loader that has no use for the options."""
    return lambda data, _options: loader(data)


# Macro-enabled Office files are refused by name. Their text could be read without running
# anything, but a corpus serves its originals back (downloads), and handing macros on to whoever
# downloads them is not a search service's call to make.
_MACRO_ENABLED = frozenset({".docm", ".xlsm", ".pptm", ".dotm", ".xltm", ".potm"})


_LOADERS: dict[str, Loader] = {
    ".md": _plain(load_markdown),
    ".markdown": _plain(load_markdown),
    ".txt": _plain(load_text),
    ".text": _plain(load_text),
    ".html": _plain(load_html),
    ".htm": _plain(load_html),
    ".pdf": load_pdf,
    ".epub": load_epub,
    ".docx": load_docx,
    ".pptx": load_pptx,
    ".xlsx": load_xlsx,
    ".csv": load_delimited,
    ".tsv": load_tsv,
}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_LOADERS)


def check_supported(path: PurePath) -> Loader:
    """The loader for `path`'s (case-insensitive) suffix; LoadError if there is none."""
    suffix = PurePath(path).suffix.lower()
    loader = _LOADERS.get(suffix)
    if suffix in _MACRO_ENABLED:
        raise LoadError(f"macro-enabled Office file ('{suffix}'): save a copy without macros "
                        "(.docx, .xlsx, .pptx) to index it")
    if loader is None:
        supported = ", ".join(sorted(ext.lstrip(".") for ext in SUPPORTED_EXTENSIONS))
        what = f"unsupported file type '{suffix}'" if suffix else "file has no extension"
        raise LoadError(f"{what} (supported: {supported})")
    return loader


def load(path: PurePath, data: bytes, options: LoadOptions = LoadOptions()) -> LoadedDocument:
    """Extract a file's text and sections; the loader is chosen by the (case-insensitive) suffix.

    `path` only picks the loader (the file is not read). Raises LoadError with a one-line
    reason for an unsupported type or a file that cannot be used; a parser crash becomes a
    LoadError too.
    """
    loader = check_supported(path)
    if not data:
        raise LoadError("empty file")
    try:
        return loader(bytes(data), options)
    except LoadError as exc:
        reason = one_line(str(exc), 120)
        if reason == str(exc):
            raise
        raise LoadError(reason) from exc
    except Exception as exc:  # a parser bug or an input it cannot cope with
        detail = f"{type(exc).__name__}: {short_exc(exc, 60)}"
        raise LoadError(f"could not read the file ({detail})") from exc
