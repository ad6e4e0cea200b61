"""PDF: the text layer of each page, one section per page that has text; with RAG_OCR, pages
without one are read by OCR (ocr.py: pypdfium2 + tesseract). The text layer is read by PDFium
(pdfium.py, the default) or pypdf (here), as RAG_PDF_READER says."""
from __future__ import annotations

import io
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from ingest.errors import LoadError
from ingest.loaders import pdfium
from ingest.loaders.base import LoadedDocument, LoadOptions
from ingest.loaders.common import build_sections, normalize_newlines, page_by_page, short_exc

_HEADER_WINDOW = 1024  # readers accept a header a little way into the file
_EOF_WINDOW = 2048
# C0 controls other than tab and newline: font-mapping debris, never readable text.
_JUNK_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@contextmanager
def quiet_pypdf() -> Iterator[None]:
    """Silence pypdf's logger and warnings while parsing (damaged files make them chatty)."""
    logger = logging.getLogger("pypdf")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous)


def check_envelope(data: bytes) -> None:
    """Refuse files that are not PDFs or were cut off before their end."""
    if b"%PDF-" not in data[:_HEADER_WINDOW]:
        raise LoadError("not a PDF file (bad header)")
    if b"%%EOF" not in data[-_EOF_WINDOW:]:
        raise LoadError("truncated PDF (no %%EOF at the end); re-export or re-download it")


def _pypdf_texts(data: bytes) -> list[str]:
    """The text layer of every page, as pypdf reads it (not yet normalised)."""
    from pypdf import PdfReader  # imported here: only PDF ingestion pays for it

    with quiet_pypdf():
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            encrypted = reader.is_encrypted
        except Exception as exc:
            raise LoadError(f"corrupt PDF: {short_exc(exc)}") from exc
        if encrypted:
            try:
                decrypted = bool(reader.decrypt(""))
            except Exception as exc:
                reason = f"encrypted PDF that cannot be decrypted: {short_exc(exc)}"
                raise LoadError(reason) from exc
            if not decrypted:
                raise LoadError("encrypted PDF (password required); save an unencrypted copy")
        try:
            count = len(reader.pages)
        except Exception as exc:
            raise LoadError(f"corrupt PDF: {short_exc(exc)}") from exc
        return page_by_page(count, lambda index: reader.pages[index].extract_text() or "")


_READERS = {"pdfium": pdfium.raw_page_texts, "pypdf": _pypdf_texts}


def page_texts(data: bytes, reader: str = "pdfium") -> list[str]:
    """The extracted text of every page (newlines normalised, trailing whitespace stripped),
    read by `reader`: "pdfium" or "pypdf"."""
    read = _READERS.get(reader)
    if read is None:
        raise ValueError(f"unknown PDF reader {reader!r}: pdfium or pypdf")
    check_envelope(data)
    raw = read(data)
    return [_JUNK_CONTROLS.sub("", normalize_newlines(text)).rstrip() for text in raw]


SCANNED = "scanned PDF: enable RAG_OCR (needs tesseract)"
NO_TESSERACT = "scanned PDF: RAG_OCR is on but tesseract is not installed"


def _with_ocr(data: bytes, texts: list[str]) -> tuple[list[str], bool]:
    """The page texts with the (nearly) empty ones read by OCR; whether any page was."""
    from ingest.loaders import ocr  # its imports are deferred too

    blank = [number for number, text in enumerate(texts, start=1) if ocr.needs_ocr(text)]
    if not blank:
        return texts, False
    if not ocr.tesseract_available():
        if all(not text.strip() for text in texts):
            raise LoadError(NO_TESSERACT)
        return texts, False  # the pages with a text layer are still worth indexing
    read = ocr.ocr_pages(data, blank)
    merged = list(texts)
    used = False
    for number, text in read.items():
        layer = texts[number - 1]
        if sum(not ch.isspace() for ch in text) > sum(not ch.isspace() for ch in layer):
            merged[number - 1] = text
            used = True
    return merged, used


def load_pdf(data: bytes, options: LoadOptions = LoadOptions()) -> LoadedDocument:
    """Load a PDF: the pages with text joined by blank lines, each its own section (page=N).

    With `options.ocr`, pages whose text layer is (almost) empty are read by OCR (ocr.py), and
    the kind is "pdf-ocr" if any page was."""
    texts = page_texts(data, options.pdf_reader)
    used_ocr = False
    if options.ocr:
        texts, used_ocr = _with_ocr(data, texts)
    parts: list[str] = []
    marks: list[tuple[int, tuple[str, ...], int | None]] = []
    offset = 0
    for number, page_text in enumerate(texts, start=1):
        if not page_text.strip():
            continue
        marks.append((offset, (), number))
        parts.append(page_text)
        offset += len(page_text) + 2
    if not parts:
        raise LoadError("scanned PDF: OCR found no text on any page" if options.ocr else SCANNED)
    text = "\n\n".join(parts)
    kind = "pdf-ocr" if used_ocr else "pdf"
    return LoadedDocument(text=text, sections=build_sections(text, marks), kind=kind)
